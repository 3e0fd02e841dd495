//! How many threads comod's work runs on. Results do not depend on it
//! (§6); speed does. rayon's default is `RAYON_NUM_THREADS`, else every
//! core of the machine; inside a SLURM job the CPUs the job was given
//! (`SLURM_CPUS_PER_TASK`) are the right number, since the node's other
//! cores belong to other jobs.

/// The thread count that [`configure_threads`] sets from the values of
/// `RAYON_NUM_THREADS` and `SLURM_CPUS_PER_TASK`: SLURM's when rayon's is
/// unset and SLURM's is a positive whole number; none (rayon decides)
/// otherwise.
pub fn thread_count(rayon: Option<&str>, slurm_cpus: Option<&str>) -> Option<usize> {
    if rayon.is_some() {
        return None;
    }
    slurm_cpus
        .and_then(|cpus| cpus.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
}

/// Sets the process's thread count from its environment, as
/// [`thread_count`] says; call once, before any parallel work.
pub fn configure_threads() {
    let var = |name| std::env::var(name).ok();
    if let Some(n) = thread_count(
        var("RAYON_NUM_THREADS").as_deref(),
        var("SLURM_CPUS_PER_TASK").as_deref(),
    ) {
        // Fails only when the pool was already built: it then stays.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slurm_cpus_count_only_when_rayon_is_not_told() {
        assert_eq!(thread_count(None, Some("1")), Some(1));
        assert_eq!(thread_count(None, Some(" 4\n")), Some(4));
        assert_eq!(thread_count(Some("2"), Some("1")), None);
        assert_eq!(thread_count(None, None), None);
        assert_eq!(thread_count(None, Some("0")), None);
        assert_eq!(thread_count(None, Some("two")), None);
    }
}
