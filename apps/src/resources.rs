//! What the process holds of the kernel's resources, read from procfs (the kernel's view, not
//! ours): open file descriptors and hugetlb memory mapped. The daemon samples them before it
//! opens anything and after it has closed and unmapped everything, so a leak of a socket, a BPF
//! object or the UMEM shows in the report.

use std::path::Path;

/// Open file descriptors of process `pid` ("self" for this one), or None if procfs cannot be
/// read.
pub fn open_fds(pid: &str) -> Option<usize> {
    // The directory handle read_dir holds is itself listed; it is there on every call, so
    // counts taken the same way compare.
    Some(std::fs::read_dir(Path::new("/proc").join(pid).join("fd")).ok()?.count())
}

/// KiB of hugetlb pages mapped by process `pid` (the `Private_Hugetlb` and `Shared_Hugetlb`
/// fields of its `smaps`), or None if procfs cannot be read.
pub fn hugetlb_kib(pid: &str) -> Option<u64> {
    let text = std::fs::read_to_string(Path::new("/proc").join(pid).join("smaps")).ok()?;
    Some(hugetlb_kib_of(&text))
}

/// Sums the hugetlb fields of an `smaps` text.
pub fn hugetlb_kib_of(smaps: &str) -> u64 {
    smaps
        .lines()
        .filter_map(|l| l.strip_prefix("Private_Hugetlb:").or_else(|| l.strip_prefix("Shared_Hugetlb:")))
        .filter_map(|v| v.trim().strip_suffix("kB").and_then(|n| n.trim().parse::<u64>().ok()))
        .sum()
}

/// Resources of a run, sampled by the daemon.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// Open fds before the UMEM was mapped and anything was opened.
    pub fds_before: Option<usize>,
    /// Open fds after every socket, BPF object and the UMEM were released.
    pub fds_after: Option<usize>,
    /// Hugetlb KiB mapped at the end of the run, before the UMEM was unmapped.
    pub hugetlb_kib_mapped: Option<u64>,
    /// Hugetlb KiB mapped after the UMEM was unmapped.
    pub hugetlb_kib_after: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hugetlb_fields_are_summed() {
        let smaps = "7f0000000000-7f0002000000 rw-s 00000000 00:0f 1 /anon_hugepage (deleted)\n\
Size:              32768 kB\nPrivate_Hugetlb:   32768 kB\nShared_Hugetlb:        0 kB\n\
55d000000000-55d000001000 r--p 00000000 08:01 2 /bin/x\nPrivate_Hugetlb:       0 kB\n\
Shared_Hugetlb:     2048 kB\n";
        assert_eq!(hugetlb_kib_of(smaps), 34816);
        assert_eq!(hugetlb_kib_of("Size: 4 kB\n"), 0);
    }
}
