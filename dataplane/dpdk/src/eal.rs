//! EAL initialisation and cleanup, lcore launch and join, and the TSC clock.

use crate::{strerror, Error};
use std::ffi::{c_void, CString};
use std::os::raw::{c_char, c_int};
use std::sync::Arc;
use tutti_dataplane::clock::{Clock, Instant};

/// The initialised Environment Abstraction Layer. Every pool, port, ring and launched
/// lcore holds an [`EalGuard`]; `rte_eal_cleanup` (and the removal of this process's
/// hugepage files, which DPDK keeps for secondary processes tutti does not use) runs
/// when the `Eal` and the last guard are gone, never under a live DPDK object.
pub struct Eal {
    inner: EalGuard,
    _not_send: core::marker::PhantomData<*const ()>,
}

/// A share of the initialised EAL: what every DPDK object holds so that the EAL is
/// cleaned up only after the last of them.
#[derive(Clone)]
pub struct EalGuard {
    _inner: Arc<EalInner>,
}

struct EalInner {
    file_prefix: String,
    huge_dir: Option<String>,
}

/// The value of EAL option `name` (`--name=v` or `--name v`), last one wins.
fn option_value(args: &[String], name: &str) -> Option<String> {
    let mut found = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(v) = a.strip_prefix(name) {
            if let Some(v) = v.strip_prefix('=') {
                found = Some(v.to_string());
            } else if v.is_empty() {
                found = it.next().cloned();
            }
        }
    }
    found
}

/// Hugetlbfs mount points from /proc/mounts.
fn hugetlbfs_mounts() -> Vec<String> {
    std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, dir, fs) = (f.next()?, f.next()?, f.next()?);
            (fs == "hugetlbfs").then(|| dir.to_string())
        })
        .collect()
}

/// Remove the hugepage files DPDK made for `prefix` (named `<prefix>map_<n>`) in `dirs`.
fn remove_hugepage_files(prefix: &str, dirs: &[String]) {
    let stem = format!("{prefix}map_");
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name
                .strip_prefix(&stem)
                .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

impl Eal {
    /// Initialise the EAL with `args` (as on a DPDK command line, without the program
    /// name). Can succeed once per process.
    pub fn init(args: &[String]) -> Result<Eal, Error> {
        let mut owned = Vec::with_capacity(args.len() + 1);
        owned.push(CString::new("tutti").expect("static name"));
        for a in args {
            owned.push(CString::new(a.as_str()).map_err(|_| Error::BadArgument(a.clone()))?);
        }
        // rte_eal_init may permute argv; give it its own array of pointers.
        let mut argv: Vec<*mut c_char> = owned.iter().map(|s| s.as_ptr() as *mut c_char).collect();
        let argc =
            c_int::try_from(argv.len()).map_err(|_| Error::EalInit("too many arguments".into()))?;
        // SAFETY: argv holds argc valid NUL-terminated strings that outlive the call
        // (`owned` lives to the end of this function; the EAL copies what it keeps).
        let rc = unsafe { dpdk_sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if rc < 0 {
            // SAFETY: reads this thread's rte_errno through our C shim.
            let errno = unsafe { dpdk_sys::tutti_rte_errno() };
            let reason = if errno == 0 {
                "see the EAL: lines above".to_string()
            } else {
                format!("{} (see the EAL: lines above)", strerror(errno))
            };
            return Err(Error::EalInit(reason));
        }
        Ok(Eal {
            inner: EalGuard {
                _inner: Arc::new(EalInner {
                    file_prefix: option_value(args, "--file-prefix")
                        .unwrap_or_else(|| "rte".into()),
                    huge_dir: option_value(args, "--huge-dir"),
                }),
            },
            _not_send: core::marker::PhantomData,
        })
    }

    /// A guard keeping the EAL initialised for as long as it lives.
    pub fn guard(&self) -> EalGuard {
        self.inner.clone()
    }

    /// The main lcore (the thread that called `init`).
    pub fn main_lcore(&self) -> u32 {
        // SAFETY: plain getter, valid after rte_eal_init.
        unsafe { dpdk_sys::rte_get_main_lcore() }
    }

    /// True if `lcore` is in the EAL's core list.
    pub fn lcore_enabled(&self, lcore: u32) -> bool {
        // SAFETY: plain getter; out-of-range ids return 0.
        lcore < dpdk_sys::RTE_MAX_LCORE && unsafe { dpdk_sys::rte_lcore_is_enabled(lcore) } != 0
    }

    /// NUMA socket of `lcore`.
    pub fn lcore_socket(&self, lcore: u32) -> u32 {
        // SAFETY: plain getter.
        unsafe { dpdk_sys::rte_lcore_to_socket_id(lcore) }
    }
}

impl Drop for EalInner {
    fn drop(&mut self) {
        // SAFETY: runs once, when the Eal and the last guard are gone: every pool, port,
        // ring and lcore launch that used the EAL has been dropped (each holds a guard;
        // a pool that had to leak itself leaked its guard too, so this never runs then).
        unsafe {
            dpdk_sys::rte_eal_cleanup();
        }
        let dirs = match &self.huge_dir {
            Some(d) => vec![d.clone()],
            None => hugetlbfs_mounts(),
        };
        remove_hugepage_files(&self.file_prefix, &dirs);
    }
}

type Job = Box<dyn FnOnce() + Send + 'static>;

extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Job> leaked by `launch` for exactly this call.
    let job: Box<Job> = unsafe { Box::from_raw(arg as *mut Job) };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)) {
        Ok(()) => 0,
        Err(_) => -1,
    }
}

/// Work running on a worker lcore; [`LaunchHandle::join`] waits for it, and so does
/// dropping the handle (the EAL stays up until then).
#[must_use = "join the lcore to learn whether its work panicked"]
pub struct LaunchHandle {
    lcore: u32,
    joined: bool,
    _eal: EalGuard,
}

impl LaunchHandle {
    /// The lcore this work runs on.
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    /// Wait for the work to return. Returns false if it panicked.
    pub fn join(mut self) -> bool {
        self.joined = true;
        // SAFETY: waits on an lcore we launched; the EAL is up (we hold a guard).
        unsafe { dpdk_sys::rte_eal_wait_lcore(self.lcore) == 0 }
    }
}

impl Drop for LaunchHandle {
    fn drop(&mut self) {
        if !self.joined {
            // SAFETY: as in `join`; the work must end before the EAL can be cleaned up.
            unsafe { dpdk_sys::rte_eal_wait_lcore(self.lcore) };
        }
    }
}

/// Run `f` on worker lcore `lcore` (pinned by the EAL to its CPU).
pub fn launch(
    eal: &Eal,
    lcore: u32,
    f: impl FnOnce() + Send + 'static,
) -> Result<LaunchHandle, Error> {
    if !eal.lcore_enabled(lcore) || lcore == eal.main_lcore() {
        return Err(Error::BadLcore(lcore));
    }
    let job: Box<Job> = Box::new(Box::new(f));
    let arg = Box::into_raw(job) as *mut c_void;
    // SAFETY: trampoline takes ownership of `arg` when the launch succeeds.
    let rc = unsafe { dpdk_sys::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
    if rc != 0 {
        // SAFETY: the launch failed, so the job was not handed over: reclaim it.
        drop(unsafe { Box::from_raw(arg as *mut Job) });
        return Err(Error::Launch {
            lcore,
            reason: strerror(rc),
        });
    }
    Ok(LaunchHandle {
        lcore,
        joined: false,
        _eal: eal.guard(),
    })
}

/// The dataplane clock: the TSC, converted to nanoseconds since the clock was made.
#[derive(Clone, Copy, Debug)]
pub struct TscClock {
    start: u64,
    hz: u64,
}

impl TscClock {
    /// A clock starting now. Needs the EAL (which measured the TSC frequency).
    pub fn new(_eal: &Eal) -> TscClock {
        // SAFETY: plain getters, valid after rte_eal_init.
        let (start, hz) = unsafe { (dpdk_sys::rte_rdtsc(), dpdk_sys::rte_get_tsc_hz()) };
        TscClock {
            start,
            hz: hz.max(1),
        }
    }

    /// Cycles per second.
    pub fn hz(&self) -> u64 {
        self.hz
    }

    /// The raw time-stamp counter, for measuring work in cycles.
    #[inline]
    pub fn cycles(&self) -> u64 {
        // SAFETY: reads the time-stamp counter.
        unsafe { dpdk_sys::rte_rdtsc() }
    }
}

impl Clock for TscClock {
    #[inline]
    fn now(&self) -> Instant {
        let cycles = self.cycles().wrapping_sub(self.start);
        Instant::from_nanos((u128::from(cycles) * 1_000_000_000 / u128::from(self.hz)) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eal_option_values() {
        let a: Vec<String> = [
            "-l",
            "0-1",
            "--file-prefix=x1",
            "--huge-dir",
            "/mnt/h",
            "--file-prefix",
            "x2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(option_value(&a, "--file-prefix").as_deref(), Some("x2"));
        assert_eq!(option_value(&a, "--huge-dir").as_deref(), Some("/mnt/h"));
        assert_eq!(option_value(&a, "--in-memory"), None);
    }

    #[test]
    fn removes_only_this_prefixes_map_files() {
        let dir = std::env::temp_dir().join(format!("tutti-huge-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["abcmap_0", "abcmap_17", "abcmap_x", "abcdmap_0", "other"] {
            std::fs::write(dir.join(f), b"").unwrap();
        }
        remove_hugepage_files("abc", &[dir.display().to_string()]);
        let mut left: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["abcdmap_0", "abcmap_x", "other"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
