//! Whether a set of records is a whole result (§6): every record carries
//! its sweep's plan, so a merge of shards, a summary or the report's join
//! can say how many runs of each plan are missing and which shards hold
//! none of them, and refuse to call a partial result final unless asked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::error::{Error, Result};
use crate::sweep::plan::{Plan, RunKey};
use crate::sweep::record::Record;

/// What a set of records lacks of one plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Gap {
    /// The plan.
    pub plan: Plan,
    /// Its runs the records lack.
    pub missing: usize,
    /// The shards none of whose runs the records hold (0-based).
    pub empty_shards: Vec<usize>,
}

/// How much of their plans a set of records holds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Completeness {
    /// The plans with runs missing.
    pub gaps: Vec<Gap>,
    /// Records that carry no plan (older record formats): whether the
    /// result is whole cannot be told for them.
    pub unplanned: usize,
}

/// The completeness of `records` with respect to every plan they name;
/// a run counts as present whichever plan its own record names (a later,
/// larger sweep may have resumed it).
pub fn completeness<A>(records: &BTreeMap<RunKey, Record<A>>) -> Completeness {
    let mut plans: Vec<&Plan> = Vec::new();
    let mut unplanned = 0;
    for record in records.values() {
        match &record.plan {
            Some(plan) if !plans.contains(&plan) => plans.push(plan),
            Some(_) => {}
            None => unplanned += 1,
        }
    }
    let gaps = plans
        .iter()
        .filter_map(|&plan| {
            let mut missing = 0;
            let mut holding = BTreeSet::new();
            for (key, shard) in plan.runs_by_shard() {
                match records.contains_key(&key) {
                    true => {
                        holding.insert(shard);
                    }
                    false => missing += 1,
                }
            }
            (missing > 0).then(|| Gap {
                plan: plan.clone(),
                missing,
                empty_shards: (0..plan.shards).filter(|s| !holding.contains(s)).collect(),
            })
        })
        .collect();
    Completeness { gaps, unplanned }
}

/// Writes whole `records` (every plan complete) as one unsharded sweep
/// would have written them, each plan in 1 shard: a merge of every shard
/// then equals the single-process sweep, apart from wall times. A partial
/// set keeps its shard counts, which say where runs are missing.
pub fn as_unsharded<A>(records: &mut BTreeMap<RunKey, Record<A>>, whole: &Completeness) {
    if !whole.is_complete() {
        return;
    }
    for plan in records.values_mut().filter_map(|r| r.plan.as_mut()) {
        plan.shards = 1;
    }
}

impl Gap {
    /// One line: the plan, the runs missing, the shards holding none.
    pub fn describe(&self) -> String {
        let plan = &self.plan;
        let plural = |n: usize, word: &str| match n {
            1 => format!("1 {word}"),
            n => format!("{n} {word}s"),
        };
        let mut text = format!(
            "{} of the plan's {} ({} × {} × {} in {}) are missing",
            plural(self.missing, "run"),
            plan.runs(),
            plural(plan.tasks.len(), "task"),
            plural(plan.methods.len(), "method"),
            plural(plan.repeats, "repeat"),
            plural(plan.shards, "shard"),
        );
        if !self.empty_shards.is_empty() {
            let shards: Vec<String> = self.empty_shards.iter().map(usize::to_string).collect();
            text.push_str(&format!(
                "; shard{} {} of {} hold{} none",
                if shards.len() == 1 { "" } else { "s" },
                shards.join(", "),
                plan.shards,
                if shards.len() == 1 { "s" } else { "" },
            ));
        }
        text
    }
}

impl Completeness {
    /// Whether no plan lacks a run.
    pub fn is_complete(&self) -> bool {
        self.gaps.is_empty()
    }

    /// The gaps, one clause each.
    pub fn describe(&self) -> String {
        let gaps: Vec<String> = self.gaps.iter().map(Gap::describe).collect();
        gaps.join("; and ")
    }

    /// Refuses a partial result about `path` unless `partial` accepts it;
    /// `what` says what would have been done with it.
    pub fn require(&self, path: &Path, what: &str, partial: bool) -> Result<()> {
        if self.is_complete() || partial {
            return Ok(());
        }
        Err(Error::data(
            path,
            format!(
                "a partial result: {}; {what} once every shard is done, or pass --partial to accept it",
                self.describe()
            ),
        ))
    }
}
