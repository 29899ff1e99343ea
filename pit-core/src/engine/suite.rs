//! A suite's life: environment, locks, deployment in dependency order, the tests, teardown.

#[allow(clippy::wildcard_imports)] // the engine's own types
use super::*;

impl Engine {
    #[tracing::instrument(skip_all, fields(run_id = %plan.run_id, suite = %suite.id))]
    pub(super) async fn run_suite(
        &self,
        plan: &Plan,
        suite: &SuitePlan,
        opts: &RunOptions,
        cancel: &CancellationToken,
        force: &CancellationToken,
    ) -> SuiteResult {
        let started_ms = now_ms();
        let timeline = Timeline::default();
        let sid = suite.id.to_string();
        self.emit(
            &sid,
            EventKind::SuiteStarted {
                environment: suite.environment.clone(),
            },
        );
        let mut result = SuiteResult {
            id: sid.clone(),
            environment: suite.environment.clone(),
            outcome: SuiteOutcome::Passed,
            stored: None,
            teardown_errors: Vec::new(),
            action_errors: Vec::new(),
            kept: Vec::new(),
            report: SuiteReport {
                schema: "pit.suite-report/v1".into(),
                run_id: plan.run_id.to_string(),
                project: plan.project.clone(),
                suite_id: sid.clone(),
                suite_name: suite.name.clone(),
                outcome: String::new(),
                error: None,
                started_ms,
                finished_ms: 0,
                timeline: Vec::new(),
                test_report: None,
                spec_hash: Some(suite.spec_hash()),
            },
        };

        let outcome = 'suite: {
            if suite.remote.is_some() || unresolved(suite) || plan.lock_manager.as_ref().is_some_and(is_remote) {
                break 'suite SuiteOutcome::Error(SuiteFailure::new(
                    Phase::Plan,
                    FailureKind::InvalidPlan,
                    format!(
                        "suite `{sid}` has REMOTE parts that were not fetched (hint: pass the plan through `pit_core::resolve::resolve` first)"
                    ),
                ));
            }
            let t = timeline.start("environment", None);
            let env = match self
                .deployer
                .create_environment(&EnvironmentRequest {
                    run_id: plan.run_id,
                    project: plan.project.clone(),
                    suite: suite.id.clone(),
                    name: suite.environment.clone(),
                    ci_job: opts.ci_job.clone(),
                })
                .await
            {
                Ok(env) => {
                    timeline.end(t, "ok", None);
                    env
                }
                Err(e) => {
                    timeline.end(t, "failed", Some(error_chain(&e)));
                    break 'suite SuiteOutcome::Error(SuiteFailure {
                        phase: Phase::Environment,
                        ..SuiteFailure::deploy(e)
                    });
                }
            };

            // The Lock Manager PIT deploys for this suite, if any: `lock_phase` starts deploying
            // it first thing, so teardown always undeploys it.
            let lock_manager = plan
                .lock_manager
                .as_ref()
                .filter(|_| suite.locks.is_some() && self.lock_manager.is_some());
            // Log tailing runs from here to the end of teardown.
            let stop_tailing = CancellationToken::new();
            let mut tailing = JoinSet::new();
            for c in suite.components().chain(lock_manager).filter(|c| c.log_tailing) {
                tailing.spawn(
                    self.clone()
                        .tail(sid.clone(), env.clone(), c.clone(), stop_tailing.clone()),
                );
            }

            let locked = self
                .lock_phase(plan, suite, &env, opts, cancel, &timeline, lock_manager)
                .await;
            let started = Arc::new(Mutex::new(Vec::<bool>::new()));
            let (store, lease, outcome) = match locked {
                Err(outcome) => (self.locks.clone(), None, outcome),
                Ok((store, lease)) => {
                    let suite_cancel = cancel.child_token();
                    let work =
                        self.deploy_and_test(plan, suite, &env, opts, &suite_cancel, &timeline, &started, &mut result);
                    let outcome = match &lease {
                        None => work.await,
                        Some(lease) => {
                            let stop = CancellationToken::new();
                            let (outcome, lost) = tokio::join!(
                                async {
                                    let o = work.await;
                                    stop.cancel();
                                    o
                                },
                                self.renew_while_running(&*store, lease, opts.lock_ttl, &stop, &suite_cancel)
                            );
                            match lost {
                                Some(e) => SuiteOutcome::Error(SuiteFailure {
                                    message: format!("{}; the suite was stopped", error_chain(&e)),
                                    ..SuiteFailure::caused_by(Phase::Locks, FailureKind::of_lock(&e), None, e)
                                }),
                                None => outcome,
                            }
                        }
                    };
                    (store, lease, outcome)
                }
            };
            let outcome = if cancel.is_cancelled() && !matches!(outcome, SuiteOutcome::Cancelled { .. }) {
                SuiteOutcome::Cancelled {
                    message: "interrupted".into(),
                }
            } else {
                outcome
            };

            if matches!(outcome, SuiteOutcome::Error { .. }) {
                let start_ms = now_ms();
                let found = self.deployer.collect_forensics(&env).await;
                let (outcome, detail) = match found {
                    None => (None, None),
                    Some(Ok(summary)) => {
                        self.emit(
                            &sid,
                            EventKind::Forensics {
                                summary: summary.clone(),
                            },
                        );
                        (Some("ok"), Some(summary))
                    }
                    Some(Err(e)) => (Some("failed"), Some(error_chain(&e))),
                };
                // Only backends that gather something add a step to the timeline.
                if let Some(outcome) = outcome {
                    timeline.record(TimelineEntry {
                        step: "forensics".into(),
                        component: None,
                        start_ms,
                        end_ms: now_ms(),
                        outcome: outcome.into(),
                        detail,
                    });
                }
            }
            let started = started.lock().expect("no panics while held").clone();
            if opts.keep {
                result.kept = self.keep_instructions(plan, suite, &env, opts, &started, lock_manager);
            } else {
                self.emit(&sid, EventKind::TearingDown);
                result.teardown_errors = self.teardown(plan, suite, &env, opts, &started, force, &timeline).await;
            }
            if let Some(lease) = lease {
                let t = timeline.start("release", None);
                match store.release(&lease).await {
                    Ok(()) => timeline.end(t, "ok", None),
                    Err(e) => {
                        timeline.end(t, "failed", Some(error_chain(&e)));
                        result.teardown_errors.push(error_chain(&e));
                    }
                }
            }
            if !opts.keep {
                if let Some(lm) = lock_manager {
                    let vars = undeploy_env(base_env(plan, suite, &env, opts), &env, lm);
                    if let Err(e) = self.undeploy_component(&sid, &env, lm, &vars, force, &timeline).await {
                        result.teardown_errors.push(error_chain(&e));
                    }
                }
            }
            stop_tailing.cancel();
            while tailing.join_next().await.is_some() {}
            if !opts.keep {
                // What the suite's commands left running (a background child, a `setsid`
                // daemon) ends with the suite.
                let start_ms = now_ms();
                let tag = crate::process::process_tag(&plan.run_id.to_string(), &env.name);
                let ended = crate::process::end_tagged(|t| t == tag, Duration::from_secs(5)).await;
                if !ended.is_empty() {
                    let pids: Vec<String> = ended.iter().map(ToString::to_string).collect();
                    timeline.record(TimelineEntry {
                        step: "leftover-processes".into(),
                        component: None,
                        start_ms,
                        end_ms: now_ms(),
                        outcome: "ended".into(),
                        detail: Some(format!(
                            "ended {} process(es) the suite's commands left running: pid {}",
                            ended.len(),
                            pids.join(", ")
                        )),
                    });
                }
            }
            if !opts.keep {
                let t = timeline.start("environment-removal", None);
                match self.deployer.remove_environment(&env).await {
                    Ok(()) => timeline.end(t, "ok", None),
                    Err(e) => {
                        timeline.end(t, "failed", Some(error_chain(&e)));
                        result.teardown_errors.push(error_chain(&e));
                    }
                }
            }
            outcome
        };

        result.report.outcome = outcome.as_str().to_owned();
        result.report.error = outcome.message().map(str::to_owned);
        result.report.finished_ms = now_ms();
        result.report.timeline = timeline.entries();
        result.outcome = outcome;
        if let Some(sink) = &self.reports {
            match sink.store(&result.report).await {
                Ok(stored) => result.stored = Some(stored),
                Err(e) => result
                    .teardown_errors
                    .push(format!("the report was not stored: {}", error_chain(&e))),
            }
        }
        // After the store, so a failed action can neither lose nor change the stored report;
        // its entries join the run's copy of the timeline.
        if let (Some(hook), false) = (
            &self.after_report,
            matches!(result.outcome, SuiteOutcome::Cancelled { .. }),
        ) {
            let entries = hook.after_report(&result.report, result.stored.as_ref()).await;
            result.action_errors = entries
                .iter()
                .filter(|e| e.outcome == "failed")
                .map(|e| e.detail.clone().unwrap_or_else(|| e.step.clone()))
                .collect();
            result.report.timeline.extend(entries);
        }
        self.emit(
            &sid,
            EventKind::SuiteFinished {
                outcome: result.outcome.as_str().to_owned(),
            },
        );
        result
    }

    /// Streams `c`'s logs as [`EventKind::Log`] events until `stop`.
    pub(super) async fn tail(self, sid: String, env: Environment, c: ComponentPlan, stop: CancellationToken) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let forward = async {
            while let Some(line) = rx.recv().await {
                self.emit(
                    &sid,
                    EventKind::Log {
                        component: c.id.to_string(),
                        line,
                    },
                );
            }
        };
        let stream = async {
            let r = self
                .deployer
                .stream_logs(&env, &c.id, c.log_container.as_deref(), tx, &stop)
                .await;
            if let Err(e) = r {
                tracing::warn!(component = %c.id, error = %error_chain(&e), "log tailing stopped");
            }
        };
        tokio::join!(stream, forward);
    }

    /// Deploys the suite's Lock Manager when PIT deploys one (`lock_manager`: its deployment
    /// starts, so it is undeployed whatever happens here), then takes the suite's locks. Returns the store the locks live in and the lease, or the
    /// suite's outcome when either failed.
    #[allow(clippy::too_many_arguments)] // the suite's whole context, as deploy_and_test
    pub(super) async fn lock_phase(
        &self,
        plan: &Plan,
        suite: &SuitePlan,
        env: &Environment,
        opts: &RunOptions,
        cancel: &CancellationToken,
        timeline: &Timeline,
        lock_manager: Option<&ComponentPlan>,
    ) -> Result<(Arc<dyn LockStore>, Option<Lease>), SuiteOutcome> {
        let sid = suite.id.to_string();
        // A failure while the run is being interrupted is the interruption.
        let outcome = |interrupted: &str, failure: SuiteFailure| {
            if cancel.is_cancelled() {
                SuiteOutcome::Cancelled {
                    message: interrupted.into(),
                }
            } else {
                SuiteOutcome::Error(failure)
            }
        };
        let failed = |failure: SuiteFailure| outcome("interrupted while deploying the Lock Manager", failure);
        let mut store = self.locks.clone();
        if let (Some(lm), Some(connect)) = (lock_manager, &self.lock_manager) {
            let in_lm = |e: DeployError| {
                failed(SuiteFailure {
                    phase: Phase::Locks,
                    message: format!("the Lock Manager: {}", error_chain(&e)),
                    ..SuiteFailure::deploy(e).in_component(lm.id.as_str())
                })
            };
            let vars = component_env(base_env(plan, suite, env, opts), env, lm);
            let outputs = self
                .deploy_component(&sid, env, lm, &vars, cancel, timeline)
                .await
                .map_err(in_lm)?;
            let url = self
                .published_or_derived(env, &outputs, LOCK_MANAGER_URL_KEY, lm.id.as_str(), lm.id.as_str())
                .await
                .map_err(in_lm)?;
            let Some(url) = url else {
                return Err(failed(SuiteFailure::new(Phase::Locks, FailureKind::LockStore, format!(
                    "Lock Manager `{}` did not publish its URL (hint: its deploy command writes `{LOCK_MANAGER_URL_KEY}=http://…` to the file named by $PIT_OUTPUTS)",
                    lm.id
                )).in_component(lm.id.as_str())));
            };
            store = connect(&url).map_err(|e| {
                failed(
                    SuiteFailure::caused_by(
                        Phase::Locks,
                        FailureKind::LockStore,
                        Some(&format!("the Lock Manager at {url}")),
                        e,
                    )
                    .in_component(lm.id.as_str()),
                )
            })?;
        }
        let Some(locks) = &suite.locks else {
            return Ok((store, None));
        };
        self.emit(
            &sid,
            EventKind::WaitingForLocks {
                ids: locks.ids.iter().map(ToString::to_string).collect(),
            },
        );
        let t = timeline.start("lock", None);
        let req = LockRequest {
            ids: locks.ids.clone(),
            owner: LockOwner {
                name: format!("pit run {}/{sid} (pid {})", plan.run_id, std::process::id()),
                run_id: Some(plan.run_id.to_string()),
                suite: Some(sid.clone()),
                ci_job: opts.ci_job.clone(),
            },
            ttl: opts.lock_ttl,
            wait: Duration::from_millis(u64::try_from(locks.timeout_ms).unwrap_or(u64::MAX)),
        };
        let progress = |p: &crate::lock::WaitProgress| {
            self.emit(
                &sid,
                EventKind::LockQueue {
                    position: p.position,
                    holders: p.holders.iter().map(ToString::to_string).collect(),
                },
            );
        };
        match store.acquire_with_progress(&req, cancel, &progress).await {
            Ok(lease) => {
                if !lease.taken_over.is_empty() {
                    self.emit(
                        &sid,
                        EventKind::StaleLocksTakenOver {
                            holders: lease.taken_over.iter().map(ToString::to_string).collect(),
                        },
                    );
                }
                timeline.end(t, "ok", Some(fencing_detail(&lease)));
                self.emit(&sid, EventKind::LocksTaken);
                Ok((store, Some(lease)))
            }
            Err(e) => {
                let status = if cancel.is_cancelled() { "cancelled" } else { "failed" };
                timeline.end(t, status, Some(error_chain(&e)));
                let kind = FailureKind::of_lock(&e);
                Err(outcome(
                    "interrupted while waiting for locks",
                    SuiteFailure::caused_by(Phase::Locks, kind, None, e),
                ))
            }
        }
    }

    /// Deploys `c` with `vars` and waits for its status check; returns what it published.
    pub(super) async fn deploy_component(
        &self,
        sid: &str,
        env: &Environment,
        c: &ComponentPlan,
        vars: &BTreeMap<String, String>,
        cancel: &CancellationToken,
        timeline: &Timeline,
    ) -> Result<BTreeMap<String, String>, DeployError> {
        let begun = now_ms();
        let step = |kind, cmd: &CommandPlan| step_for(c, kind, cmd, vars, self.toolkit_args);
        self.emit(
            sid,
            EventKind::StepStarted {
                component: c.id.to_string(),
                step: StepKind::Deploy,
            },
        );
        let t = timeline.start(StepKind::Deploy.as_str(), Some(c));
        let deployed = self
            .deployer
            .deploy(env, &step(StepKind::Deploy, &c.deploy), cancel)
            .await;
        timeline.finish(t, &deployed.as_ref().map(|_| None));
        if let Err(e) = deployed {
            self.emit(sid, failed_event(c, StepKind::Deploy, &e));
            return Err(e);
        }
        let own = read_outputs(&outputs_file(env, c));
        if let Some(check) = &c.deploy.status_check {
            self.emit(
                sid,
                EventKind::StepStarted {
                    component: c.id.to_string(),
                    step: StepKind::StatusCheck,
                },
            );
            let t = timeline.start(StepKind::StatusCheck.as_str(), Some(c));
            let mut s = step(StepKind::StatusCheck, &c.deploy);
            // The check sees what the deploy published (its URL, say).
            s.env.extend(own.clone());
            s.argv.clone_from(&check.argv);
            s.timeout = Duration::from_secs(check.timeout_seconds);
            let checked = self.deployer.status_check(env, &s, cancel).await;
            timeline.finish(t, &checked.as_ref().map(|n| Some(format!("{n} attempt(s)"))));
            if let Err(e) = checked {
                self.emit(sid, failed_event(c, StepKind::StatusCheck, &e));
                return Err(e);
            }
        }
        self.emit(
            sid,
            EventKind::Ready {
                component: c.id.to_string(),
                elapsed_ms: now_ms().saturating_sub(begun),
            },
        );
        Ok(own)
    }

    /// The URL a component published under `key`, else the one the backend derives for its
    /// `service` ([`Deployer::service_url`]).
    pub(super) async fn published_or_derived(
        &self,
        env: &Environment,
        published: &BTreeMap<String, String>,
        key: &str,
        service: &str,
        route: &str,
    ) -> Result<Option<String>, DeployError> {
        match published.get(key) {
            Some(url) => Ok(Some(url.clone())),
            None => {
                let url = self.deployer.service_url(env, service, route).await?;
                if let Some(url) = &url {
                    tracing::info!(%service, %url, "no {key} published: reaching it through the backend");
                }
                Ok(url)
            }
        }
    }

    /// Runs `c`'s undeploy command with `vars` (cut short only by `force`).
    pub(super) async fn undeploy_component(
        &self,
        sid: &str,
        env: &Environment,
        c: &ComponentPlan,
        vars: &BTreeMap<String, String>,
        force: &CancellationToken,
        timeline: &Timeline,
    ) -> Result<(), DeployError> {
        // Without an undeploy command, removing the environment cleans up.
        let Some(undeploy) = &c.undeploy else {
            return Ok(());
        };
        let t = timeline.start(StepKind::Undeploy.as_str(), Some(c));
        let step = step_for(c, StepKind::Undeploy, undeploy, vars, self.toolkit_args);
        let done = self.deployer.deploy(env, &step, force).await;
        timeline.finish(t, &done.as_ref().map(|_| None));
        match &done {
            Ok(_) => self.emit(
                sid,
                EventKind::Undeployed {
                    component: c.id.to_string(),
                },
            ),
            Err(e) => self.emit(sid, failed_event(c, StepKind::Undeploy, e)),
        }
        done.map(drop)
    }

    /// Renews `lease` every third of `ttl` until `stop`; if it is lost, cancels the suite and
    /// says why.
    pub(super) async fn renew_while_running(
        &self,
        store: &dyn LockStore,
        lease: &Lease,
        ttl: Duration,
        stop: &CancellationToken,
        suite: &CancellationToken,
    ) -> Option<crate::lock::LockError> {
        let mut lease = lease.clone();
        loop {
            tokio::select! {
                () = stop.cancelled() => return None,
                () = tokio::time::sleep(ttl / 3) => {}
            }
            match store.renew(&lease, ttl).await {
                Ok(renewed) => lease = renewed,
                Err(e) => {
                    suite.cancel();
                    return Some(e);
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)] // the suite's whole context; a struct would only rename it
    pub(super) async fn deploy_and_test(
        &self,
        plan: &Plan,
        suite: &SuitePlan,
        env: &Environment,
        opts: &RunOptions,
        cancel: &CancellationToken,
        timeline: &Timeline,
        started: &Arc<Mutex<Vec<bool>>>,
        result: &mut SuiteResult,
    ) -> SuiteOutcome {
        let sid = suite.id.to_string();
        // A plan built by hand (not by `Plan::build`) may lack the test app, which everything
        // below waits for: an error, not a panic.
        if suite.test_app.is_none() {
            return SuiteOutcome::Error(SuiteFailure::new(
                Phase::Plan,
                FailureKind::InvalidPlan,
                format!(
                    "suite `{sid}` has no test app to run the tests (hint: build plans with `Plan::build` or give `test_app`)"
                ),
            ));
        }
        let comps: Vec<&ComponentPlan> = suite.components().collect();
        let n = comps.len();
        let index: HashMap<&str, usize> = comps.iter().enumerate().map(|(i, c)| (c.id.as_str(), i)).collect();
        // The test app (last) waits for every component.
        let deps: Vec<Vec<usize>> = comps
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == n {
                    (0..n - 1).collect()
                } else {
                    c.depends_on.iter().map(|d| index[d.as_str()]).collect()
                }
            })
            .collect();
        *started.lock().expect("no panics while held") = vec![false; n];
        let outputs: Arc<Mutex<Vec<BTreeMap<String, String>>>> = Arc::new(Mutex::new(vec![BTreeMap::new(); n]));
        let ancestors = ancestors(&deps);
        let base = base_env(plan, suite, env, opts);

        let results = run_graph(&deps, &vec![true; n], opts.max_parallel, Some(cancel), |i| {
            let c = comps[i].clone();
            let mut vars = base.clone();
            {
                let outs = outputs.lock().expect("no panics while held");
                for &a in &ancestors[i] {
                    vars.extend(outs[a].clone());
                }
            }
            let vars = component_env(vars, env, &c);
            started.lock().expect("no panics while held")[i] = true;
            let (engine, env, cancel, timeline, outputs, sid) = (
                self.clone(),
                env.clone(),
                cancel.clone(),
                timeline.clone(),
                outputs.clone(),
                sid.clone(),
            );
            async move {
                let own = engine
                    .deploy_component(&sid, &env, &c, &vars, &cancel, &timeline)
                    .await?;
                outputs.lock().expect("no panics while held")[i] = own;
                Ok(())
            }
        })
        .await;

        let never_ran = results.iter().any(Option::is_none);
        let mut failures: Vec<DeployError> = results.into_iter().flatten().filter_map(Result::err).collect();
        if let Some(first) = failures.iter().position(|e| !e.is_cancelled()) {
            return SuiteOutcome::Error(SuiteFailure::deploy(failures.swap_remove(first)));
        }
        if !failures.is_empty() || never_ran {
            return SuiteOutcome::Cancelled {
                message: "interrupted during deployment".into(),
            };
        }

        // The tests.
        let test_app = comps[n - 1];
        let published = outputs.lock().expect("no panics while held")[n - 1].clone();
        let url = match self
            .published_or_derived(
                env,
                &published,
                TEST_APP_URL_KEY,
                test_app.id.as_str(),
                suite.id.as_str(),
            )
            .await
        {
            Ok(url) => url,
            Err(e) => {
                let kind = FailureKind::of_deploy(&e);
                return SuiteOutcome::Error(
                    SuiteFailure::caused_by(
                        Phase::Tests,
                        kind,
                        Some(&format!("cannot reach test app `{}`", test_app.id)),
                        e,
                    )
                    .in_component(test_app.id.as_str()),
                );
            }
        };
        let Some(url) = url else {
            return SuiteOutcome::Error(SuiteFailure::new(Phase::Tests, FailureKind::TestApp, format!(
                    "test app `{}` did not publish its URL (hint: its deploy command writes `{TEST_APP_URL_KEY}=http://…` to the file named by $PIT_OUTPUTS)",
                    test_app.id
                )).in_component(test_app.id.as_str()));
        };
        let tests_failed = |e: crate::runner::RunnerError| {
            let kind = FailureKind::of_runner(&e);
            SuiteOutcome::Error(SuiteFailure::caused_by(Phase::Tests, kind, None, e).in_component(test_app.id.as_str()))
        };
        let client = (self.runner)(&url);
        let t = timeline.start("test", None);
        let session = match client.start(&suite.id).await {
            Ok(s) => s.session_id.to_string(),
            Err(e) => {
                timeline.end(t, "failed", Some(error_chain(&e)));
                return tests_failed(e);
            }
        };
        self.emit(
            &sid,
            EventKind::TestsStarted {
                session: session.clone(),
            },
        );
        let timeout = Duration::from_secs(suite.timeout_seconds);
        match client.wait_for_report(&session, timeout, opts.poll, cancel).await {
            Ok(report) => {
                let passed = report.passed();
                timeline.end(
                    t,
                    if passed { "ok" } else { "failed" },
                    Some(format!("session {session}")),
                );
                self.emit(&sid, EventKind::TestsFinished { passed });
                result.report.test_report = Some(report);
                if passed {
                    SuiteOutcome::Passed
                } else {
                    SuiteOutcome::Failed
                }
            }
            Err(crate::runner::RunnerError::Cancelled) => {
                timeline.end(t, "cancelled", None);
                SuiteOutcome::Cancelled {
                    message: "interrupted during the tests".into(),
                }
            }
            Err(e) => {
                timeline.end(t, "failed", Some(error_chain(&e)));
                tests_failed(e)
            }
        }
    }

    /// Undeploys what was started, the test app first, each component once everything that
    /// depends on it is gone. Collects errors instead of stopping.
    #[allow(clippy::too_many_arguments)] // as deploy_and_test
    pub(super) async fn teardown(
        &self,
        plan: &Plan,
        suite: &SuitePlan,
        env: &Environment,
        opts: &RunOptions,
        started: &[bool],
        force: &CancellationToken,
        timeline: &Timeline,
    ) -> Vec<String> {
        let comps: Vec<&ComponentPlan> = suite.components().collect();
        let n = comps.len();
        let mut errors = Vec::new();
        if n > 0 && started.len() == n {
            let index: HashMap<&str, usize> = comps.iter().enumerate().map(|(i, c)| (c.id.as_str(), i)).collect();
            // Reverse edges: a component waits for its dependents (and everything for the test app).
            let mut waits: Vec<Vec<usize>> = vec![Vec::new(); n];
            for (i, c) in comps.iter().enumerate().take(n - 1) {
                for d in &c.depends_on {
                    waits[index[d.as_str()]].push(i);
                }
                waits[i].push(n - 1);
            }
            let base = base_env(plan, suite, env, opts);
            let sid = suite.id.to_string();
            let results = run_graph(&waits, started, opts.max_parallel, None, |i| {
                let c = comps[i].clone();
                let vars = undeploy_env(base.clone(), env, &c);
                let (env, force, timeline, engine, sid) =
                    (env.clone(), force.clone(), timeline.clone(), self.clone(), sid.clone());
                async move {
                    engine
                        .undeploy_component(&sid, &env, &c, &vars, &force, &timeline)
                        .await
                }
            })
            .await;
            errors.extend(
                results
                    .into_iter()
                    .flatten()
                    .filter_map(Result::err)
                    .map(|e| error_chain(&e)),
            );
        }
        errors
    }

    /// Shell commands, in teardown order, that undeploy what `--keep` left up: each with the
    /// variables PIT would have given it (quoted for a POSIX shell; PIT itself never uses one).
    pub(super) fn keep_instructions(
        &self,
        plan: &Plan,
        suite: &SuitePlan,
        env: &Environment,
        opts: &RunOptions,
        started: &[bool],
        lock_manager: Option<&ComponentPlan>,
    ) -> Vec<String> {
        let comps: Vec<&ComponentPlan> = suite
            .components()
            .zip(started.iter().chain(std::iter::repeat(&false)))
            .filter_map(|(c, &s)| s.then_some(c))
            .collect();
        let mut out: Vec<String> = suite
            .teardown
            .iter()
            .flatten()
            .filter_map(|id| comps.iter().find(|c| &c.id == id))
            .copied()
            .chain(lock_manager)
            .filter_map(|c| Some((c, c.undeploy.as_ref()?)))
            .map(|(c, undeploy)| {
                let base = base_env(plan, suite, env, opts);
                let step = step_for(c, StepKind::Undeploy, undeploy, &base, self.toolkit_args);
                // PIT's own variables and the component's outputs; the user's extra ones are
                // already in their shell.
                let pit_only = base
                    .into_iter()
                    .filter(|(k, _)| k.starts_with("PIT_") && !opts.env.contains_key(k))
                    .collect();
                let vars = undeploy_env(pit_only, env, c);
                let assignments: Vec<String> = vars
                    .iter()
                    .map(|(k, v)| format!("{k}={}", crate::plan::shell_quote(v)))
                    .collect();
                let argv: Vec<String> = step.argv.iter().map(|a| crate::plan::shell_quote(a)).collect();
                format!(
                    "(cd {} && env {} {})",
                    crate::plan::shell_quote(&step.cwd.display().to_string()),
                    assignments.join(" "),
                    argv.join(" ")
                )
            })
            .collect();
        out.push(format!(
            "rm -r {}",
            crate::plan::shell_quote(&env.workspace.display().to_string())
        ));
        out
    }
}

pub(super) fn failed_event(c: &ComponentPlan, step: StepKind, e: &DeployError) -> EventKind {
    EventKind::StepFailed {
        component: c.id.to_string(),
        step,
        error: error_chain(e),
    }
}

pub(super) fn fencing_detail(lease: &Lease) -> String {
    let tokens: Vec<String> = lease.fencing.iter().map(|(id, t)| format!("{id}#{t}")).collect();
    format!("lease {} ({})", lease.id, tokens.join(", "))
}
