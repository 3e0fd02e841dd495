//! The runs of a sweep (§6): tasks × methods × repeats, their seeds, their
//! canonical order and their split into shards.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::data::{Task, TaskId};
use crate::error::{Error, Result};
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

    fn from_str(s: &str) -> std::result::Result<Shard, String> {
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

impl Shard {
    /// The shard of a job-array element (§6): the plan split into `count`
    /// shards (as `--shards` gives it), this element's index its array
    /// task id `id` (SLURM's `SLURM_ARRAY_TASK_ID`). Ids `0..count` are the
    /// shards and `count` is shard 0, so a 0-based (`--array=0-3`) and a
    /// 1-based (`--array=1-4`) array both cover the plan, and a strided,
    /// listed or single resubmitted element (`--array=2`) runs the shard
    /// its id names, whatever the array's size. Any other id is refused.
    pub fn of_array_task(count: usize, id: Option<&str>) -> Result<Shard> {
        let refuse = |problem: String| Err(Error::option("--shards", count, problem));
        if count == 0 {
            return refuse("need at least 1 shard".into());
        }
        let Some(id) = id else {
            return refuse(format!(
                "SLURM_ARRAY_TASK_ID is not set (not an element of a job array); give --shard i/{count} instead"
            ));
        };
        match id.trim().parse::<usize>() {
            Ok(i) if i < count => Ok(Shard { index: i, count }),
            Ok(i) if i == count => Ok(Shard { index: 0, count }),
            Ok(i) => refuse(format!(
                "array task id {i} is outside the plan of {count} shards (ids 0-{}, or 1-{count} for a 1-based array)",
                count - 1
            )),
            Err(_) => refuse(format!("SLURM_ARRAY_TASK_ID {id:?} is not a whole number")),
        }
    }

    /// `path` with every `{shard}` replaced by this shard's index: one
    /// results file per shard from one command line (e.g.
    /// `results/shard-{shard}.jsonl`), named by the shard the element
    /// runs, not by its array task id.
    pub fn fill(&self, path: &std::path::Path) -> std::path::PathBuf {
        match path.to_str() {
            Some(text) if text.contains("{shard}") => {
                text.replace("{shard}", &self.index.to_string()).into()
            }
            _ => path.to_path_buf(),
        }
    }

    /// [`Shard::of_array_task`] of this process's `SLURM_ARRAY_TASK_ID`.
    pub fn of_slurm_array(count: usize) -> Result<Shard> {
        Shard::of_array_task(count, std::env::var("SLURM_ARRAY_TASK_ID").ok().as_deref())
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A sweep's whole plan as each of its records carries it (§6): its
/// tasks, methods, repeats and shard count, so that a set of records (a
/// merge of shards, a file to summarise) tells which runs of the plan it
/// lacks and which shards hold none of them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The tasks, in plan order; stored as one comma-separated list, or
    /// `all` for the 180 digit tasks.
    #[serde(with = "task_list")]
    pub tasks: Vec<TaskId>,
    /// The methods, in report order, each once.
    pub methods: Vec<Method>,
    /// Repeats per (task, method).
    pub repeats: usize,
    /// The number of shards the plan was split into.
    pub shards: usize,
}

impl Plan {
    /// The plan of `tasks` × `methods` (each once) × `repeats` in
    /// `shards` shards.
    pub fn new(tasks: Vec<TaskId>, methods: &[Method], repeats: usize, shards: usize) -> Plan {
        Plan {
            tasks,
            methods: each_once(methods),
            repeats,
            shards,
        }
    }

    /// Its number of runs.
    pub fn runs(&self) -> usize {
        self.tasks.len() * self.methods.len() * self.repeats
    }

    /// Every run of the plan with the shard that runs it (as [`groups`]
    /// splits the plan).
    pub fn runs_by_shard(&self) -> impl Iterator<Item = (RunKey, usize)> + '_ {
        self.tasks.iter().enumerate().flat_map(move |(t, task)| {
            (0..self.repeats).flat_map(move |repeat| {
                let shard = (t * self.repeats + repeat) % self.shards.max(1);
                self.methods.iter().map(move |&method| {
                    let key = RunKey {
                        task: task.clone(),
                        method,
                        repeat,
                    };
                    (key, shard)
                })
            })
        })
    }
}

/// A plan's task list as one text: `all` for the digit tasks, else the
/// identifiers joined by commas (they hold none).
mod task_list {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::data::{Task, TaskId};

    /// The 180 digit tasks' identifiers, made once (every record written
    /// compares its plan's tasks with them).
    fn digit_tasks() -> &'static [TaskId] {
        static ALL: std::sync::OnceLock<Vec<TaskId>> = std::sync::OnceLock::new();
        ALL.get_or_init(|| Task::all().into_iter().map(TaskId::from).collect())
    }

    pub fn serialize<S: Serializer>(tasks: &[TaskId], s: S) -> Result<S::Ok, S::Error> {
        if tasks == digit_tasks() {
            return s.serialize_str("all");
        }
        let ids: Vec<&str> = tasks.iter().map(TaskId::as_str).collect();
        s.serialize_str(&ids.join(","))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<TaskId>, D::Error> {
        let text = String::deserialize(d)?;
        if text == "all" {
            return Ok(digit_tasks().to_vec());
        }
        text.split(',')
            .map(|id| TaskId::try_from(id.to_string()).map_err(serde::de::Error::custom))
            .collect()
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

/// `methods` in report order, each once: what a plan runs of a
/// `--methods` list.
fn each_once(methods: &[Method]) -> Vec<Method> {
    let mut ordered = methods.to_vec();
    ordered.sort();
    ordered.dedup();
    ordered
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
    let ordered = each_once(methods);
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
    fn a_plan_assigns_each_run_the_shard_that_runs_it() {
        let tasks = Task::all();
        let ids: Vec<TaskId> = tasks[..5].iter().map(|&t| t.into()).collect();
        let plan = Plan::new(
            ids,
            &[Method::Retrain, Method::Stochastic, Method::Retrain],
            3,
            4,
        );
        assert_eq!(plan.runs(), 30);
        assert_eq!(plan.runs_by_shard().count(), 30);
        for index in 0..4 {
            let shard = Shard { index, count: 4 };
            let mut from_groups: Vec<RunKey> =
                groups(&tasks[..5], TaskId::from, &plan.methods, 3, shard)
                    .iter()
                    .flat_map(|g| g.methods.iter().map(|&m| g.key(m)))
                    .collect();
            let mut from_plan: Vec<RunKey> = plan
                .runs_by_shard()
                .filter(|&(_, s)| s == index)
                .map(|(key, _)| key)
                .collect();
            from_groups.sort();
            from_plan.sort();
            assert_eq!(from_groups, from_plan);
        }
    }

    #[test]
    fn a_plan_of_every_digit_task_is_stored_as_all() {
        let all: Vec<TaskId> = Task::all().into_iter().map(TaskId::from).collect();
        let plan = Plan::new(all, &Method::ALL, 10, 8);
        let json = serde_json::to_string(&plan).unwrap();
        assert!(json.contains("\"tasks\":\"all\""), "{json}");
        assert_eq!(serde_json::from_str::<Plan>(&json).unwrap(), plan);
        let some = Plan::new(plan.tasks[3..5].to_vec(), &Method::ALL, 1, 1);
        let json = serde_json::to_string(&some).unwrap();
        assert_eq!(serde_json::from_str::<Plan>(&json).unwrap(), some);
        assert!(
            serde_json::from_str::<Plan>(
                &json.replace(',', ", ").replace(", \"methods", ",\"methods")
            )
            .is_err()
        );
    }

    #[test]
    fn array_task_ids_cover_the_plan_whatever_the_array() {
        let shard = |id: &str| Shard::of_array_task(4, Some(id)).map(|s| s.index);
        let zero_based: Vec<usize> = ["0", "1", "2", "3"].map(|i| shard(i).unwrap()).to_vec();
        let one_based: Vec<usize> = ["1", "2", "3", "4"].map(|i| shard(i).unwrap()).to_vec();
        let mut sorted = one_based.clone();
        sorted.sort();
        assert_eq!(zero_based, [0, 1, 2, 3]);
        assert_eq!(sorted, [0, 1, 2, 3]);
        assert_eq!(Shard::of_array_task(4, Some("2")).unwrap().count, 4);
        for (id, problem) in [
            ("5", "outside the plan of 4 shards"),
            ("x", "not a whole number"),
        ] {
            let err = Shard::of_array_task(4, Some(id)).unwrap_err().to_string();
            assert!(
                err.contains(problem) && err.starts_with("--shards 4"),
                "{err}"
            );
        }
        let err = Shard::of_array_task(4, None).unwrap_err().to_string();
        assert!(err.contains("SLURM_ARRAY_TASK_ID is not set"), "{err}");
        assert!(Shard::of_array_task(0, Some("0")).is_err());
        let one_based_last = Shard::of_array_task(4, Some("4")).unwrap();
        let path = std::path::Path::new("results/shard-{shard}.jsonl");
        assert_eq!(
            one_based_last.fill(path),
            std::path::Path::new("results/shard-0.jsonl")
        );
        assert_eq!(
            one_based_last.fill(std::path::Path::new("r.jsonl")),
            std::path::Path::new("r.jsonl")
        );
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
