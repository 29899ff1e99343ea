//! Dependency graphs of components: deployment waves and cycle detection.
//!
//! Nodes are indices `0..n`; `deps[i]` lists the nodes that node `i` depends on (which must be
//! deployed and healthy before it starts).

/// A dependency cycle, as node indices: `path[0]` depends on `path[1]` … and the last depends on
/// `path[0]` again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycle {
    /// The nodes of the cycle, each depending on the next.
    pub path: Vec<usize>,
}

/// Groups nodes into waves: every node's dependencies are in earlier waves, and each wave holds
/// every node whose dependencies are all satisfied by then. Nodes keep their input order within
/// a wave.
///
/// # Errors
/// The cycles found (see [`find_cycles`]) when the graph has any.
///
/// ```
/// use pit_core::graph::waves;
/// // 0 <- 1 <- 2, and 3 on its own
/// let w = waves(&[vec![], vec![0], vec![1], vec![]]).unwrap();
/// assert_eq!(w, vec![vec![0, 3], vec![1], vec![2]]);
/// ```
pub fn waves(deps: &[Vec<usize>]) -> Result<Vec<Vec<usize>>, Vec<Cycle>> {
    let n = deps.len();
    let mut remaining: Vec<usize> = deps.iter().map(|d| dedup_count(d)).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ds) in deps.iter().enumerate() {
        let mut seen = Vec::new();
        for &d in ds {
            if !seen.contains(&d) {
                seen.push(d);
                dependents[d].push(i);
            }
        }
    }
    let mut current: Vec<usize> = (0..n).filter(|&i| remaining[i] == 0).collect();
    let mut placed = 0;
    let mut out = Vec::new();
    while !current.is_empty() {
        placed += current.len();
        let mut next = Vec::new();
        for &i in &current {
            for &j in &dependents[i] {
                remaining[j] -= 1;
                if remaining[j] == 0 {
                    next.push(j);
                }
            }
        }
        next.sort_unstable();
        out.push(std::mem::replace(&mut current, next));
    }
    if placed == n {
        Ok(out)
    } else {
        Err(find_cycles(deps))
    }
}

fn dedup_count(ds: &[usize]) -> usize {
    let mut v = ds.to_vec();
    v.sort_unstable();
    v.dedup();
    v.len()
}

/// Finds dependency cycles by depth-first search: one per back edge met, each reported once
/// whatever node it was entered from. Self-dependencies are cycles of length one.
pub fn find_cycles(deps: &[Vec<usize>]) -> Vec<Cycle> {
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    let n = deps.len();
    let mut colour = vec![Colour::White; n];
    let mut cycles: Vec<Cycle> = Vec::new();
    for start in 0..n {
        if colour[start] != Colour::White {
            continue;
        }
        // Iterative DFS: (node, next edge index); `stack` doubles as the current path.
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        colour[start] = Colour::Grey;
        while let Some(&mut (node, ref mut edge)) = stack.last_mut() {
            if let Some(&next) = deps[node].get(*edge) {
                *edge += 1;
                match colour[next] {
                    Colour::White => {
                        colour[next] = Colour::Grey;
                        stack.push((next, 0));
                    }
                    Colour::Grey => {
                        let from = stack
                            .iter()
                            .position(|&(v, _)| v == next)
                            .expect("grey nodes are on the stack");
                        let path: Vec<usize> = stack[from..].iter().map(|&(v, _)| v).collect();
                        if !cycles.iter().any(|c| same_cycle(&c.path, &path)) {
                            cycles.push(Cycle { path });
                        }
                    }
                    Colour::Black => {}
                }
            } else {
                colour[node] = Colour::Black;
                stack.pop();
            }
        }
    }
    cycles
}

fn same_cycle(a: &[usize], b: &[usize]) -> bool {
    a.len() == b.len() && (0..a.len()).any(|r| a.iter().cycle().skip(r).take(a.len()).eq(b.iter()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn independent_nodes_share_the_first_wave() {
        assert_eq!(waves(&[vec![], vec![], vec![]]).unwrap(), vec![vec![0, 1, 2]]);
    }

    #[test]
    fn a_diamond_takes_three_waves() {
        let w = waves(&[vec![], vec![0], vec![0], vec![1, 2]]).unwrap();
        assert_eq!(w, vec![vec![0], vec![1, 2], vec![3]]);
    }

    #[test]
    fn duplicate_edges_count_once() {
        assert_eq!(waves(&[vec![], vec![0, 0]]).unwrap(), vec![vec![0], vec![1]]);
    }

    #[test]
    fn a_three_node_cycle_is_reported_once_in_dependency_order() {
        let cycles = waves(&[vec![1], vec![2], vec![0], vec![0]]).unwrap_err();
        assert_eq!(cycles, vec![Cycle { path: vec![0, 1, 2] }]);
    }

    #[test]
    fn self_dependency_is_a_cycle_of_one() {
        assert_eq!(find_cycles(&[vec![0]]), vec![Cycle { path: vec![0] }]);
    }

    #[test]
    fn separate_cycles_are_all_found() {
        let cycles = find_cycles(&[vec![1], vec![0], vec![3], vec![2]]);
        assert_eq!(cycles.len(), 2);
    }
}
