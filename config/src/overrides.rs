//! CLI overrides: a flag overrides the TOML key of the same name. Keys of `[[port]]` apply to
//! every port (e.g. `--mode copy` forces copy mode on all AF_XDP ports).

use crate::schema::{BindMode, EngineConfig, Hugepages, Idle, XdpMode};

/// Values given on the command line; `None` leaves the file's value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// `[engine] burst`.
    pub burst: Option<u32>,
    /// `[engine] idle`.
    pub idle: Option<Idle>,
    /// `[engine] duration_secs`.
    pub duration_secs: Option<f64>,
    /// `[engine] stats_interval_ms`.
    pub stats_interval_ms: Option<u64>,
    /// `[engine] control_socket`.
    pub control_socket: Option<String>,
    /// `[umem] frames`.
    pub frames: Option<u32>,
    /// `[umem] frame_size`.
    pub frame_size: Option<u32>,
    /// `[umem] hugepages`.
    pub hugepages: Option<Hugepages>,
    /// `[[port]] mode`, all ports.
    pub mode: Option<BindMode>,
    /// `[[port]] xdp_mode`, all ports.
    pub xdp_mode: Option<XdpMode>,
    /// `[[port]] need_wakeup`, all ports.
    pub need_wakeup: Option<bool>,
    /// `[[port]] rx_ring`, all ports.
    pub rx_ring: Option<u32>,
    /// `[[port]] tx_ring`, all ports.
    pub tx_ring: Option<u32>,
    /// `[[port]] fill_ring`, all ports.
    pub fill_ring: Option<u32>,
    /// `[[port]] comp_ring`, all ports.
    pub comp_ring: Option<u32>,
}

impl Overrides {
    /// Applies the overrides to `cfg`.
    pub fn apply(&self, cfg: &mut EngineConfig) {
        fn set<T: Copy>(dst: &mut T, v: Option<T>) {
            if let Some(v) = v {
                *dst = v;
            }
        }
        set(&mut cfg.engine.burst, self.burst);
        set(&mut cfg.engine.idle, self.idle);
        if self.duration_secs.is_some() {
            cfg.engine.duration_secs = self.duration_secs;
        }
        set(&mut cfg.engine.stats_interval_ms, self.stats_interval_ms);
        if self.control_socket.is_some() {
            cfg.engine.control_socket.clone_from(&self.control_socket);
        }
        set(&mut cfg.umem.frames, self.frames);
        set(&mut cfg.umem.frame_size, self.frame_size);
        set(&mut cfg.umem.hugepages, self.hugepages);
        for p in &mut cfg.ports {
            set(&mut p.mode, self.mode);
            set(&mut p.xdp_mode, self.xdp_mode);
            set(&mut p.need_wakeup, self.need_wakeup);
            set(&mut p.rx_ring, self.rx_ring);
            set(&mut p.tx_ring, self.tx_ring);
            set(&mut p.fill_ring, self.fill_ring);
            set(&mut p.comp_ring, self.comp_ring);
        }
    }
}
