//! `pit lock …` and `pit lock-manager serve`: thin layers over pit-lock.

use std::fmt::Write as _;
use std::time::Duration;

use pit_core::lock::{LockError, LockOwner, LockRequest, LockStore, WaitProgress};
use pit_core::naming::Escaped;
use pit_core::pitfile::LockId;
use pit_lock::HttpLockStore;
use tokio_util::sync::CancellationToken;

use crate::cli::{LockArgs, LockCommand, Output};
use crate::commands::{json, stdout, Ui};
use crate::error::CliError;

/// The Lock Manager client for `url`, with the token from `PIT_LOCK_TOKEN`.
pub fn client(url: &str) -> Result<HttpLockStore, CliError> {
    Ok(pit_run::lock_client(url, std::env::var(pit_lock::TOKEN_ENV).ok())?)
}

fn default_owner() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "someone".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    format!("{user}@{host} (pit lock)")
}

/// `pit lock --embedded list|force-release`: the file store `pit run` uses without a Lock
/// Manager.
fn run_embedded(ui: &Ui, args: &LockArgs) -> Result<i32, CliError> {
    let state = args.state_dir.clone().unwrap_or_else(pit_run::default_state_dir);
    let store = pit_core::lock::FileLockStore::new(state.join("locks"));
    let runtime = tokio::runtime::Runtime::new().map_err(CliError::Runtime)?;
    runtime.block_on(async {
        match &args.command {
            LockCommand::List => {
                let table = store.table().await?;
                match args.output {
                    Output::Json => stdout(&json(&table.held))?,
                    Output::Human => stdout(&human_embedded(&table))?,
                }
            }
            LockCommand::ForceRelease { ids } => {
                let ids: Vec<_> = ids.iter().map(|i| i.as_str().into()).collect();
                let freed = store.force_release(&ids).await?;
                match args.output {
                    Output::Json => stdout(&json(&freed))?,
                    Output::Human if freed.is_empty() => ui.message("nothing was held"),
                    Output::Human => {
                        for h in &freed {
                            ui.message(&format!(
                                "freed {} (held by {})",
                                Escaped(&h.id.0),
                                Escaped(&h.owner.name)
                            ));
                        }
                    }
                }
            }
            _ => {
                return Err(LockError::Invalid(
                    "the embedded store takes `list` and `force-release` only: `pit run` takes its locks itself".into(),
                )
                .into())
            }
        }
        Ok(pit_core::exit::OK)
    })
}

fn human_embedded(table: &pit_core::lock::LockTable) -> String {
    let now = pit_core::lock::now_ms();
    let here = pit_core::lock::HolderProcess::current();
    let mut out = String::new();
    if table.held.is_empty() {
        out.push_str("no locks held\n");
    }
    for (id, h) in &table.held {
        let process = match &h.process {
            Some(p) if p.is_gone(&here) => format!(
                "pid {} on {}, gone: the next run takes it over, ",
                p.pid,
                Escaped(&p.host)
            ),
            Some(p) => format!("pid {} on {}, ", p.pid, Escaped(&p.host)),
            None => String::new(),
        };
        held_line(&mut out, id, &h.owner.name, &process, h.token, h.expires_at_ms, now);
    }
    out
}

/// One held id of a listing: `id  held by owner  (DETAIL fencing #N, expires in …)`.
fn held_line(out: &mut String, id: &LockId, owner: &str, detail: &str, token: u64, expires_at_ms: u64, now: u64) {
    let left = Duration::from_millis(expires_at_ms.saturating_sub(now) / 1000 * 1000);
    let _ = writeln!(
        out,
        "{}  held by {}  ({detail}fencing #{token}, expires in {})",
        Escaped(&id.0),
        Escaped(owner),
        humantime::format_duration(left)
    );
}

/// Ids from outside, escaped, comma-separated.
fn escaped_ids(ids: &[LockId]) -> String {
    ids.iter()
        .map(|i| Escaped(&i.0).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn run(ui: &Ui, args: &LockArgs) -> Result<i32, CliError> {
    if args.embedded {
        return run_embedded(ui, args);
    }
    let Some(url) = args.lock_manager.as_deref() else {
        return Err(LockError::Invalid(
            "no Lock Manager given: pass --lock-manager URL or set PIT_LOCK_MANAGER (or --embedded for the locks of `pit run` without one)".into(),
        )
        .into());
    };
    let locks = client(url)?;
    let runtime = tokio::runtime::Runtime::new().map_err(CliError::Runtime)?;
    runtime.block_on(async {
        match &args.command {
            LockCommand::Acquire { ids, ttl, wait, owner } => {
                let req = LockRequest {
                    ids: ids.iter().map(|i| i.as_str().into()).collect(),
                    owner: LockOwner {
                        name: owner.clone().unwrap_or_else(default_owner),
                        ci_job: pit_run::JobContext::from_env().job,
                        ..LockOwner::default()
                    },
                    ttl: *ttl,
                    wait: *wait,
                };
                let cancel = CancellationToken::new();
                tokio::spawn({
                    let cancel = cancel.clone();
                    async move {
                        if tokio::signal::ctrl_c().await.is_ok() {
                            cancel.cancel();
                        }
                    }
                });
                let progress = |p: &WaitProgress| ui.message(&describe_wait(p));
                let lease = locks.acquire_with_progress(&req, &cancel, &progress).await?;
                match args.output {
                    Output::Json => stdout(&json(&lease))?,
                    Output::Human => {
                        let tokens: Vec<String> = lease.fencing.iter().map(|(id, t)| format!("{id}#{t}")).collect();
                        ui.message(&format!(
                            "holding {} (fencing {})",
                            escaped_ids(&req.ids),
                            tokens.join(", ")
                        ));
                        stdout(&format!("{}\n", lease.id))?;
                    }
                }
            }
            LockCommand::Renew { lease, ttl } => {
                let lease = locks.renew_id(lease, *ttl).await?;
                match args.output {
                    Output::Json => stdout(&json(&lease))?,
                    Output::Human => ui.message(&format!(
                        "lease {} renewed for {}",
                        lease.id,
                        humantime::format_duration(*ttl)
                    )),
                }
            }
            LockCommand::Release { lease } => {
                let held = locks.release_id(lease).await?;
                match args.output {
                    Output::Json => stdout(&json(&serde_json::json!({"lease": lease, "released": held})))?,
                    Output::Human if held => ui.message(&format!("lease {lease} released")),
                    Output::Human => ui.message(&format!("lease {lease} was no longer held")),
                }
            }
            LockCommand::List => {
                let list = locks.list().await?;
                match args.output {
                    Output::Json => stdout(&json(&list))?,
                    Output::Human => stdout(&human_list(&list))?,
                }
            }
            LockCommand::ForceRelease { ids } => {
                let ids: Vec<_> = ids.iter().map(|i| i.as_str().into()).collect();
                let ended = locks.force_release(&ids).await?;
                match args.output {
                    Output::Json => stdout(&json(&ended))?,
                    Output::Human if ended.is_empty() => ui.message("nothing was held"),
                    Output::Human => {
                        for l in &ended {
                            ui.message(&format!(
                                "ended lease {} of {} ({})",
                                Escaped(&l.id),
                                Escaped(&l.owner.name),
                                escaped_ids(&l.ids)
                            ));
                        }
                    }
                }
            }
        }
        Ok(pit_core::exit::OK)
    })
}

fn describe_wait(p: &WaitProgress) -> String {
    let holders: Vec<String> = p.holders.iter().map(ToString::to_string).collect();
    match (p.position, holders.is_empty()) {
        (1, false) => format!("waiting: next in line; {}", holders.join(", ")),
        (n, true) => format!("waiting: place {n} in the queue"),
        (n, false) => format!("waiting: place {n} in the queue; {}", holders.join(", ")),
    }
}

fn human_list(list: &pit_lock::api::LockList) -> String {
    let now = pit_core::lock::now_ms();
    let mut out = String::new();
    if list.locks.is_empty() {
        out.push_str("no locks held\n");
    }
    for l in &list.locks {
        // The lease id is shown only to its holder and to admins.
        let lease = l
            .lease
            .as_deref()
            .map_or_else(String::new, |lease| format!("lease {}, ", Escaped(lease)));
        held_line(
            &mut out,
            &l.id,
            &l.owner.name,
            &lease,
            l.fencing_token,
            l.expires_at_ms,
            now,
        );
        for w in &l.waiting {
            let _ = writeln!(out, "    {}. {}", w.position, Escaped(&w.owner.name));
        }
    }
    if !list.queue.is_empty() {
        out.push_str("queue:\n");
        for q in &list.queue {
            let _ = writeln!(
                out,
                "  {}. {} wants {}",
                q.position,
                Escaped(&q.owner.name),
                escaped_ids(&q.ids)
            );
        }
    }
    out
}

pub fn serve(args: pit_lock::serve::ServeArgs, log_text: bool) -> Result<i32, CliError> {
    pit_lock::serve::init_logging(!log_text);
    let runtime = tokio::runtime::Runtime::new().map_err(CliError::Runtime)?;
    runtime.block_on(pit_lock::serve::run(args))?;
    Ok(pit_core::exit::OK)
}
