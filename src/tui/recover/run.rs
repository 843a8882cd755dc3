//! The Recover screen's progress pane: keys that answer, cancel or roll
//! back the shown job, and reading its journal as it grows.

use super::{Stage, Wizard};
use crate::jobs::{JobSpec, JobView};
use crate::tui::action::Cmd;
use crossterm::event::{KeyCode, KeyEvent};

impl Wizard {
    pub(super) fn run_key(&mut self, key: KeyEvent) -> Vec<Cmd> {
        let Some(job) = &self.job else {
            self.go(Stage::Pick);
            return vec![];
        };
        let id = job.id.clone();
        let ask = job.waiting.as_ref().map(|w| w.ask).unwrap_or_default();
        let answer = |a: &str| {
            vec![Cmd::AnswerJob {
                id: id.clone(),
                ask,
                answer: a.into(),
            }]
        };
        if let Some(what) = self.asking.take() {
            if key.code != KeyCode::Char('y') {
                return vec![];
            }
            return match what {
                'C' if job.running() => vec![Cmd::CancelJob { id }],
                'u' => self.rollback_spec().into_iter().collect(),
                'D' => vec![Cmd::DiscardKept { job: id }],
                _ => vec![],
            };
        }
        match (&job.waiting, key.code) {
            (Some(w), KeyCode::Enter) if w.kind != "failed" => answer("continue"),
            (Some(w), KeyCode::Char('r')) if w.kind == "failed" => answer("retry"),
            (Some(w), KeyCode::Char('s')) if w.skippable || w.kind == "confirm" => answer("skip"),
            (Some(_), KeyCode::Char('a')) => answer("abort"),
            (_, KeyCode::Char('C')) if job.running() => {
                self.asking = Some('C');
                vec![]
            }
            (_, KeyCode::Char('u')) if job.finished.is_some() && !job.replaced.is_empty() => {
                self.asking = Some('u');
                vec![]
            }
            (_, KeyCode::Char('D')) if job.finished.is_some() && !job.replaced.is_empty() => {
                self.asking = Some('D');
                vec![]
            }
            (_, KeyCode::Esc) | (_, KeyCode::Char('q')) => {
                // The job goes on; it is listed first when the screen opens.
                self.job = None;
                self.query.clear();
                self.go(Stage::Pick);
                vec![Cmd::LoadJobs]
            }
            _ => vec![],
        }
    }

    /// A rollback job for what the shown job replaced, through the
    /// `rollback` runbook; it becomes the shown job.
    fn rollback_spec(&mut self) -> Option<Cmd> {
        let job = self.job.as_ref()?;
        let Some(rb) = self.runbooks.iter().find(|r| r.id == "rollback") else {
            self.error = Some(
                "the rollback runbook is missing: `lifeboat rollback JOB` does the same".into(),
            );
            return None;
        };
        let spec = JobSpec {
            id: crate::jobs::new_id(&rb.id),
            runbook: rb.file.clone(),
            services: job.services.clone(),
            point: "latest".into(),
            inputs: [("restore".to_string(), job.id.clone())].into(),
            interactive: true,
            key: None,
        };
        self.job = Some(JobView {
            id: spec.id.clone(),
            title: rb.title.clone(),
            steps: rb
                .steps
                .iter()
                .map(|s| (s.clone(), crate::jobs::StepState::Pending))
                .collect(),
            services: spec.services.clone(),
            ..Default::default()
        });
        self.report = None;
        self.sel = 0;
        Some(Cmd::StartJob(Box::new(spec)))
    }

    /// The kept copies are gone (or could not all be removed).
    pub fn on_discarded(&mut self, r: Result<Vec<String>, String>) {
        match r {
            Ok(said) => {
                if let Some(j) = &mut self.job {
                    // Nothing is left to roll back to.
                    j.replaced.clear();
                }
                self.notice = Some(format!(
                    "{}; this job can no longer be rolled back",
                    said.join("; ")
                ));
            }
            Err(e) => self.error = Some(e),
        }
    }

    /// Every fast tick while a job is shown: read what its journal gained.
    pub fn tail(&mut self) -> Vec<Cmd> {
        match &self.job {
            Some(j)
                if self.stage() == Stage::Run
                    && !self.tailing
                    && (j.finished.is_none() || j.offset == 0) =>
            {
                self.tailing = true;
                vec![Cmd::TailJob(Box::new(j.clone()))]
            }
            _ => vec![],
        }
    }

    /// A fresh read of the shown job; once it has finished, its report
    /// is read to be shown.
    pub fn on_tail(&mut self, v: JobView) -> Vec<Cmd> {
        self.tailing = false;
        if self.job.as_ref().is_none_or(|j| j.id != v.id) {
            return vec![];
        }
        let report = v.finished.as_ref().and_then(|f| f.2.clone());
        let just_finished =
            v.finished.is_some() && self.job.as_ref().is_some_and(|j| j.finished.is_none());
        self.job = Some(v);
        let mut cmds = Vec::new();
        // The job may have written to the repository: what the console
        // kept of it is stale.
        if just_finished {
            cmds.push(Cmd::Forget);
        }
        if let Some(p) = report.filter(|_| self.report.is_none()) {
            self.report = Some(Vec::new());
            cmds.push(Cmd::ReadReport(p));
        }
        cmds
    }
}
