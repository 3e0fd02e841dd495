//! The runs of a sweep (§6): tasks × methods × repeats, their seeds, their
//! canonical order and their split into shards.

use std::fmt;
use std::str::FromStr;

use crate::data::{Task, TaskId};
use crate::rng::derive_seed;
use crate::train::Method;

/// Repeats per (task, method) of the full study, the default of a sweep (§6).
pub const FULL_REPEATS: usize = 10;
/// Repeats of the default reproduction.
pub const REPRODUCTION_REPEATS: usize = 6;

/// The default reproduction's tasks: each of the 45 digit pairs once, in
/// the quadrants in turn (every quadrant 11 or 12 times); the full study
/// is [`Task::all`].
pub fn reproduction_tasks() -> Vec<Task> {
    let mut tasks = Vec::new();
    for a in 0..10u8 {
        for b in a + 1..10 {
            let quadrant = (tasks.len() % 4) as u8;
            tasks.push(Task::new(a, b, quadrant).expect("a < b, quadrant < 4"));
        }
    }
    tasks
}

/// One run: (task, method, repeat); ordered canonically.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunKey {
    /// The task.
    pub task: TaskId,
    /// The method.
    pub method: Method,
    /// The repeat, from 0.
    pub repeat: usize,
}

impl fmt::Display for RunKey {
    /// `1-7@0 stochastic repeat 2`, as messages name a run.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} repeat {}",
            self.task,
            self.method.name(),
            self.repeat
        )
    }
}

impl RunKey {
    /// The run's seed: a fixed hash of (master seed, task, method, repeat),
    /// so results depend on nothing else (§6).
    pub fn seed(&self, master: u64) -> u64 {
        derive_seed(
            master,
            &[
                self.task.as_str().into(),
                self.method.name().into(),
                self.repeat.into(),
            ],
        )
    }
}

/// A shard `i/n` of a sweep: the (task, repeat) groups whose index mod n is i.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This shard, 0-based.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not i/n (e.g. 0/8)"))?;
        let parse = |t: &str| {
            t.trim()
                .parse::<usize>()
                .map_err(|_| format!("{s:?} is not i/n with whole numbers"))
        };
        let (index, count) = (parse(i)?, parse(n)?);
        if count == 0 || index >= count {
            return Err(format!(
                "{s:?}: need 0 ≤ i < n (shards are numbered from 0)"
            ));
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The runs of one (task, repeat): a shard holds whole groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group<T> {
    /// The task.
    pub task: T,
    /// Its name in records and seeds.
    pub id: TaskId,
    /// The repeat.
    pub repeat: usize,
    /// The methods, in report order, each once.
    pub methods: Vec<Method>,
}

impl<T> Group<T> {
    /// The key of this group's run of `method`.
    pub fn key(&self, method: Method) -> RunKey {
        RunKey {
            task: self.id.clone(),
            method,
            repeat: self.repeat,
        }
    }
}

/// The groups of a sweep of `tasks` (named by `id`) that belong to
/// `shard`, in plan order; the methods in report order, each once.
pub fn groups<T: Copy>(
    tasks: &[T],
    id: impl Fn(T) -> TaskId,
    methods: &[Method],
    repeats: usize,
    shard: Shard,
) -> Vec<Group<T>> {
    let mut ordered = methods.to_vec();
    ordered.sort();
    ordered.dedup();
    let mut out = Vec::new();
    for (t, &task) in tasks.iter().enumerate() {
        for repeat in 0..repeats {
            if (t * repeats + repeat) % shard.count == shard.index {
                out.push(Group {
                    task,
                    id: id(task),
                    repeat,
                    methods: ordered.clone(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_groups() {
        let tasks = Task::all();
        let all = groups(&tasks[..7], TaskId::from, &Method::ALL, 3, Shard::default());
        assert_eq!(all.len(), 21);
        assert_eq!(all[0].methods, Method::ALL);
        let mut union: Vec<Group<Task>> = (0..4)
            .flat_map(|i| {
                groups(
                    &tasks[..7],
                    TaskId::from,
                    &Method::ALL,
                    3,
                    Shard { index: i, count: 4 },
                )
            })
            .collect();
        union.sort_by_key(|g| (g.task, g.repeat));
        let mut expected = all.clone();
        expected.sort_by_key(|g| (g.task, g.repeat));
        assert_eq!(union, expected);
    }

    #[test]
    fn shard_syntax() {
        assert_eq!(
            "2/8".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 8 }
        );
        for bad in ["3/2", "2/2", "1/0", "a/b", "3"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn seeds_differ_between_runs() {
        let task: Task = "1-7@0".parse().unwrap();
        let a = RunKey {
            task: task.into(),
            method: Method::Stochastic,
            repeat: 0,
        };
        let b = RunKey {
            repeat: 1,
            ..a.clone()
        };
        let c = RunKey {
            method: Method::Retrain,
            ..a.clone()
        };
        assert_ne!(a.seed(0), b.seed(0));
        assert_ne!(a.seed(0), c.seed(0));
        assert_ne!(a.seed(0), a.seed(1));
    }
}
