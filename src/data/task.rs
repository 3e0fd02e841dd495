//! Specific tasks `a-b@q` (§1): tell digit a from digit b in quadrant q;
//! and the identifier a task has in records and seeds.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Number of quadrants of the canvas.
pub const QUADRANTS: usize = 4;

/// A binary task: target digit of class `a` (label 0) or `b` (label 1) in
/// `quadrant`, with a < b.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Task {
    /// The class with label 0.
    pub a: u8,
    /// The class with label 1.
    pub b: u8,
    /// The quadrant of the target digit (0 top-left … 3 bottom-right).
    pub quadrant: u8,
}

impl Task {
    /// A validated task.
    pub fn new(a: u8, b: u8, quadrant: u8) -> Result<Task> {
        let spec = format!("{a}-{b}@{quadrant}");
        let fail = |message: &str| {
            Err(Error::Task {
                spec: spec.clone(),
                message: message.to_string(),
            })
        };
        if a > 9 || b > 9 {
            return fail("digits must be 0..9");
        }
        if a >= b {
            return fail("needs a < b (e.g. 1-7@0)");
        }
        if quadrant as usize >= QUADRANTS {
            return fail("quadrant must be 0..3");
        }
        Ok(Task { a, b, quadrant })
    }

    /// All 45 pairs × 4 quadrants = 180 tasks, by pair then quadrant.
    pub fn all() -> Vec<Task> {
        let mut tasks = Vec::with_capacity(180);
        for a in 0..10u8 {
            for b in a + 1..10 {
                for q in 0..QUADRANTS as u8 {
                    tasks.push(Task { a, b, quadrant: q });
                }
            }
        }
        tasks
    }

    /// The class of a label (0 → a, 1 → b).
    pub fn class_of(&self, label: u8) -> u8 {
        if label == 0 { self.a } else { self.b }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}@{}", self.a, self.b, self.quadrant)
    }
}

impl FromStr for Task {
    type Err = Error;

    fn from_str(s: &str) -> Result<Task> {
        let fail = || Error::Task {
            spec: s.to_string(),
            message: "expected a-b@q with digits a < b and quadrant q in 0..3, e.g. 1-7@0"
                .to_string(),
        };
        let (pair, q) = s.trim().split_once('@').ok_or_else(fail)?;
        let (a, b) = pair.split_once('-').ok_or_else(fail)?;
        let digit = |t: &str| t.parse::<u8>().map_err(|_| fail());
        Task::new(digit(a)?, digit(b)?, digit(q)?).map_err(|e| match e {
            Error::Task { message, .. } => Error::Task {
                spec: s.to_string(),
                message,
            },
            other => other,
        })
    }
}

/// The name of a task in records, seeds and reports (§6): `a-b@q` for the
/// digit tasks. Kept as text so that records of other task families
/// (such as the multi-task attributes of §8) read alike; ordered as text,
/// which for `a-b@q` is the order of (a, b, q).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TaskId(String);

impl TaskId {
    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TaskId {
    type Error = String;

    /// Any non-empty text without whitespace or commas (task lists are
    /// comma-separated).
    fn try_from(text: String) -> std::result::Result<TaskId, String> {
        if text.is_empty() || text.contains(|c: char| c.is_whitespace() || c == ',') {
            return Err(format!(
                "task identifier {text:?} is empty or holds whitespace or commas"
            ));
        }
        Ok(TaskId(text))
    }
}

impl From<TaskId> for String {
    fn from(id: TaskId) -> String {
        id.0
    }
}

impl From<Task> for TaskId {
    fn from(task: Task) -> TaskId {
        TaskId(task.to_string())
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The task list that means all 180 tasks.
pub const ALL_TASKS: &str = "all";

/// Parses `all` (the 180 tasks) or a comma-separated list such as
/// `1-7@0,3-8@2`; duplicates are an error.
pub fn parse_task_list(s: &str) -> Result<Vec<Task>> {
    if s.trim() == ALL_TASKS {
        return Ok(Task::all());
    }
    let mut tasks: Vec<Task> = Vec::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let task: Task = part.parse()?;
        if tasks.contains(&task) {
            return Err(Error::Task {
                spec: part.trim().to_string(),
                message: "listed twice".to_string(),
            });
        }
        tasks.push(task);
    }
    if tasks.is_empty() {
        return Err(Error::Task {
            spec: s.to_string(),
            message: "no tasks given (use `all` or a list like 1-7@0,3-8@2)".to_string(),
        });
    }
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let t: Task = "1-7@0".parse().unwrap();
        assert_eq!((t.a, t.b, t.quadrant), (1, 7, 0));
        assert_eq!(t.to_string(), "1-7@0");
        assert_eq!(Task::all().len(), 180);
        assert_eq!(parse_task_list("all").unwrap().len(), 180);
        assert_eq!(parse_task_list("1-7@0, 2-3@3").unwrap().len(), 2);
    }

    #[test]
    fn task_ids_order_like_tasks_and_reject_separators() {
        let mut tasks = Task::all();
        tasks.reverse();
        let mut ids: Vec<TaskId> = tasks.iter().map(|&t| t.into()).collect();
        ids.sort();
        let in_order: Vec<TaskId> = Task::all().into_iter().map(TaskId::from).collect();
        assert_eq!(ids, in_order);
        for bad in ["", "a b", "1-7@0,2-3@1"] {
            assert!(TaskId::try_from(bad.to_string()).is_err(), "{bad:?}");
        }
        assert_eq!(
            TaskId::try_from("even@q0".to_string()).unwrap().as_str(),
            "even@q0"
        );
    }

    #[test]
    fn rejects_bad_tasks() {
        for bad in ["7-1@0", "3-3@1", "1-7@4", "1-7", "a-b@c", "1-10@0", ""] {
            let err = parse_task_list(bad).unwrap_err().to_string();
            assert!(err.starts_with("task"), "{bad}: {err}");
        }
        assert!(parse_task_list("1-7@0,1-7@0").is_err());
    }
}
