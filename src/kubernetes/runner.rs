//! Runs a source's watches and periodic lists on the module runtime until shutdown, and hands
//! the plugin what to save, so the plugins only shape records and keep their `<storage>`.

use std::time::{Duration, Instant};

use super::watch::{self, Change, Seen, Target};
use super::ClientSettings;
use crate::router::Shutdown;

/// What one job of a source does.
#[derive(Clone, Debug)]
pub enum Job {
    /// List, then watch (see [`watch::run`]).
    Watch(Target),
    /// List every `interval`. With `dedupe`, only objects (or versions) not reported before are
    /// reported, as [`Item::Change`]; without, every list is reported whole as [`Item::Listed`].
    Pull {
        target: Target,
        interval: Duration,
        dedupe: bool,
    },
}

/// What a job reports.
pub enum Item {
    Change(Change),
    /// A whole list and its resourceVersion.
    Listed(Vec<serde_json::Value>, Option<String>),
}

/// How often changed [`Seen`] sets are handed to `save` (besides at the end).
pub struct SavePolicy {
    pub every: Duration,
}

/// Runs `jobs` (each with the [`Seen`] it starts from) until `shutdown`, calling
/// `report(job index, item)`; calls `save(job index, seen)` for each changed set at most every
/// `policy.every` and once at the end. A client that cannot be built (a damaged kubeconfig) is
/// retried every 30 s.
pub fn run(
    settings: &ClientSettings,
    jobs: Vec<(Job, Seen)>,
    shutdown: &Shutdown,
    report: &(dyn Fn(usize, Item) + Sync),
    save: &mut dyn FnMut(usize, &Seen),
    policy: SavePolicy,
) -> Result<(), String> {
    let rt = super::runtime()?;
    let seen: Vec<parking_lot::Mutex<Seen>> = jobs
        .iter()
        .map(|(_, s)| parking_lot::Mutex::new(s.clone()))
        .collect();
    let jobs: Vec<Job> = jobs.into_iter().map(|(j, _)| j).collect();
    rt.block_on(async {
        let client = loop {
            match settings.client().await {
                Ok(c) => break c,
                Err(e) => {
                    tracing::error!("kubernetes: {e}; retrying in 30s");
                    tokio::select! {
                        _ = shutdown.wait() => return,
                        _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                    }
                }
            }
        };
        let work = futures::future::join_all(jobs.iter().enumerate().map(|(i, job)| {
            let client = client.clone();
            let seen = &seen[i];
            async move {
                match job {
                    Job::Watch(target) => {
                        watch::run(client, target, seen, shutdown.wait(), |c| {
                            report(i, Item::Change(c))
                        })
                        .await
                    }
                    Job::Pull {
                        target,
                        interval,
                        dedupe,
                    } => {
                        pull(client, target, *interval, *dedupe, seen, shutdown, |it| {
                            report(i, it)
                        })
                        .await
                    }
                }
            }
        }));
        let saver = async {
            loop {
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(policy.every) => {}
                }
                for (i, s) in seen.iter().enumerate() {
                    let mut s = s.lock();
                    if s.take_dirty() {
                        save(i, &s);
                    }
                }
            }
        };
        tokio::join!(work, saver);
    });
    for (i, s) in seen.iter().enumerate() {
        let mut s = s.lock();
        if s.take_dirty() {
            save(i, &s);
        }
    }
    Ok(())
}

async fn pull(
    client: kube::Client,
    target: &Target,
    interval: Duration,
    dedupe: bool,
    seen: &parking_lot::Mutex<Seen>,
    shutdown: &Shutdown,
    report: impl Fn(Item),
) {
    let mut failing = false;
    loop {
        let started = Instant::now();
        let listed = tokio::select! {
            _ = shutdown.wait() => return,
            r = watch::list(client.clone(), target) => r,
        };
        match listed {
            Ok((items, rv)) => {
                if failing {
                    failing = false;
                    tracing::info!("kubernetes: list of {target} recovered");
                }
                if dedupe {
                    for c in seen.lock().observe_list(items) {
                        report(Item::Change(c));
                    }
                } else {
                    report(Item::Listed(items, rv));
                }
            }
            Err(e) => {
                if failing {
                    tracing::debug!("kubernetes: {e}");
                } else {
                    failing = true;
                    tracing::warn!("kubernetes: {e}; retrying at the next interval");
                }
            }
        }
        let wait = interval
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(100));
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
