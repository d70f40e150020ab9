//! The eBPF datapath: loads the C programs of `bpf/`, attaches them to the
//! host side of every pod's veth, and keeps their maps equal to the
//! resolved policy; its socket programs ([`sock`]) translate Services.
//!
//! Everything the kernel keeps lives under the pin directory: the maps
//! (`maps/`, shared by both programs), one TCX link per hook (`links/`)
//! and the socket programs' cgroup links (`sock/`).
//! A restarted agent finds them there, swaps its freshly loaded programs
//! into the existing links atomically and rewrites the maps as a diff, so
//! enforcement never has a gap. [`uninstall`] removes all of it.

pub mod abi;
mod events;
mod maps;
mod routing;
pub mod sock;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use aya::maps::{Array, HashMap as BpfHashMap, LpmTrie, MapData, PerCpuArray, RingBuf};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::tc::{SchedClassifierLink, TcAttachType};
use aya::programs::{LinkOrder, SchedClassifier};
use aya::{Ebpf, EbpfLoader};

pub use events::{EventReader, EventRing, flow_of};
pub use maps::{MapWriter, WriteSummary};
pub use routing::{endpoint_interfaces, install_redirect_routing, node_addresses, remove_redirect_routing};
pub use sock::SocketLb;

use self::abi::{CtEntry, CtKey};
use crate::service::ServiceTable;

const FROM_POD: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/from_pod.o"));
const TO_POD: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/to_pod.o"));

/// The default pin directory.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/porin";

/// Sizes and places the operator can choose.
#[derive(Debug, Clone)]
pub struct Settings {
    pub pin_dir: PathBuf,
    pub ipcache_entries: u32,
    pub endpoint_entries: u32,
    pub policy_entries: u32,
    pub ct_entries: u32,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            pin_dir: PathBuf::from(DEFAULT_PIN_DIR),
            ipcache_entries: 65_536,
            endpoint_entries: 4_096,
            policy_entries: 65_536,
            ct_entries: 262_144,
        }
    }
}

/// A datapath program and the hook it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hook {
    /// Packets leaving a pod: the tcx ingress of its host-side veth.
    FromPod,
    /// Packets entering a pod: the tcx egress of its host-side veth.
    ToPod,
}

impl Hook {
    const ALL: [Hook; 2] = [Hook::FromPod, Hook::ToPod];

    fn program(self) -> &'static str {
        match self {
            Hook::FromPod => "from_pod",
            Hook::ToPod => "to_pod",
        }
    }

    fn attach_type(self) -> TcAttachType {
        match self {
            Hook::FromPod => TcAttachType::Ingress,
            Hook::ToPod => TcAttachType::Egress,
        }
    }
}

/// The loaded datapath.
#[derive(Debug)]
pub struct Datapath {
    settings: Settings,
    /// One object per program; their maps are the same pinned maps.
    objects: Vec<(Hook, Ebpf)>,
    sockets: SocketLb,
}

/// The maps the agent writes and reads, taken out of the loaded objects.
pub struct Maps {
    pub ipcache: LpmTrie<MapData, abi::IpcacheKey, abi::IpcacheValue>,
    pub endpoints: BpfHashMap<MapData, [u8; 4], abi::EndpointValue>,
    pub policy: LpmTrie<MapData, abi::PolicyKey, abi::PolicyValue>,
    pub config: Array<MapData, abi::DatapathConfig>,
    pub conntrack: BpfHashMap<MapData, CtKey, CtEntry>,
    pub counters: PerCpuArray<MapData, u64>,
}

impl std::fmt::Debug for Maps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maps").finish_non_exhaustive()
    }
}

fn map_dir(pin_dir: &Path) -> PathBuf {
    pin_dir.join("maps")
}

fn link_dir(pin_dir: &Path) -> PathBuf {
    pin_dir.join("links")
}

/// `links/<interface>/<program>` (bpffs reserves names with dots).
fn link_pin(pin_dir: &Path, interface: &str, hook: Hook) -> PathBuf {
    link_dir(pin_dir).join(interface).join(hook.program())
}

/// Mounts the BPF filesystem at /sys/fs/bpf when nothing is mounted there.
fn ensure_bpffs() -> anyhow::Result<()> {
    let mounts = std::fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    if mounts.lines().any(|line| line.split_whitespace().nth(1) == Some("/sys/fs/bpf")) {
        return Ok(());
    }
    let status = std::process::Command::new("mount")
        .args(["-t", "bpf", "bpf", "/sys/fs/bpf"])
        .status()
        .context("running mount")?;
    if !status.success() {
        bail!("cannot mount the BPF filesystem at /sys/fs/bpf (porin needs root)");
    }
    Ok(())
}

impl Datapath {
    /// Loads both programs; maps already pinned under the pin directory
    /// (from an earlier run) are reused with their contents.
    pub fn load(settings: Settings) -> anyhow::Result<Datapath> {
        ensure_bpffs()?;
        let maps = map_dir(&settings.pin_dir);
        std::fs::create_dir_all(&maps).with_context(|| format!("creating {}", maps.display()))?;
        std::fs::create_dir_all(link_dir(&settings.pin_dir))?;
        let mut objects = Vec::new();
        for (hook, bytes) in [(Hook::FromPod, FROM_POD), (Hook::ToPod, TO_POD)] {
            let mut ebpf = EbpfLoader::new()
                .default_map_pin_directory(&maps)
                .map_max_entries("porin_ipcache", settings.ipcache_entries)
                .map_max_entries("porin_endpoints", settings.endpoint_entries)
                .map_max_entries("porin_policy", settings.policy_entries)
                .map_max_entries("porin_ct", settings.ct_entries)
                .load(bytes)
                .with_context(|| format!("loading the {} program", hook.program()))?;
            program(&mut ebpf, hook)?
                .load()
                .with_context(|| format!("verifying the {} program", hook.program()))?;
            objects.push((hook, ebpf));
        }
        let sockets = SocketLb::load(&settings.pin_dir)?;
        Ok(Datapath { settings, objects, sockets })
    }

    /// Translates Services for the processes of `cgroup` (see [`SocketLb::attach`]).
    pub fn attach_sockets(&mut self, cgroup: &Path) -> anyhow::Result<()> {
        self.sockets.attach(cgroup)
    }

    /// Makes the service maps say what `table` says.
    pub fn write_services(&mut self, table: &ServiceTable) -> anyhow::Result<()> {
        self.sockets.write(table)
    }

    /// Takes the map handles (once).
    pub fn take_maps(&mut self) -> anyhow::Result<Maps> {
        let ebpf = &mut self.objects[0].1;
        let mut take = |name: &str| ebpf.take_map(name).with_context(|| format!("map {name} missing"));
        Ok(Maps {
            ipcache: LpmTrie::try_from(take("porin_ipcache")?)?,
            endpoints: BpfHashMap::try_from(take("porin_endpoints")?)?,
            policy: LpmTrie::try_from(take("porin_policy")?)?,
            config: Array::try_from(take("porin_config")?)?,
            conntrack: BpfHashMap::try_from(take("porin_ct")?)?,
            counters: PerCpuArray::try_from(take("porin_counters")?)?,
        })
    }

    /// Takes the event ring buffer (once).
    pub fn take_events(&mut self) -> anyhow::Result<EventRing> {
        let map = self.objects[0].1.take_map("porin_events").context("map porin_events missing")?;
        Ok(EventRing::new(RingBuf::try_from(map)?))
    }

    /// Attaches both programs to a pod's host-side interface. An existing
    /// pinned link (from an earlier run) gets the new program atomically;
    /// otherwise a new link is created first in the hook's chain and pinned.
    pub fn attach(&mut self, interface: &str, ifindex: u32) -> anyhow::Result<()> {
        for hook in Hook::ALL {
            let pin = link_pin(&self.settings.pin_dir, interface, hook);
            std::fs::create_dir_all(pin.parent().expect("a link directory"))?;
            let ebpf = &mut self.objects.iter_mut().find(|(h, _)| *h == hook).expect("both hooks loaded").1;
            let program = program(ebpf, hook)?;
            let existing = pin.exists().then(|| PinnedLink::from_pin(&pin)).transpose();
            let link_id = match existing {
                Ok(Some(pinned)) => {
                    let link = SchedClassifierLink::try_from(FdLink::from(pinned))?;
                    program.attach_to_link(link)
                }
                Ok(None) | Err(_) => {
                    // A stale pin (its interface went away) is replaced.
                    std::fs::remove_file(&pin).ok();
                    let attach = aya::programs::tc::TcAttach::Tcx {
                        attach_type: hook.attach_type(),
                        order: LinkOrder::first(),
                    };
                    program.attach(ifindex, attach)
                }
            }
            .with_context(|| format!("attaching {} to {interface}", hook.program()))?;
            let link = FdLink::try_from(program.take_link(link_id)?)?;
            if !pin.exists() {
                link.pin(&pin).with_context(|| format!("pinning {}", pin.display()))?;
            }
        }
        Ok(())
    }

    /// Detaches from every interface not in `keep` (pods that are gone).
    pub fn detach_others(&self, keep: &BTreeSet<String>) -> anyhow::Result<()> {
        for (interface, pins) in pinned_links(&self.settings.pin_dir)? {
            if !keep.contains(&interface) {
                pins.iter().try_for_each(|pin| detach(pin))?;
                std::fs::remove_dir(link_dir(&self.settings.pin_dir).join(&interface)).ok();
            }
        }
        Ok(())
    }
}

fn program(ebpf: &mut Ebpf, hook: Hook) -> anyhow::Result<&mut SchedClassifier> {
    let program =
        ebpf.program_mut(hook.program()).with_context(|| format!("no program {}", hook.program()))?;
    Ok(program.try_into()?)
}

/// The pinned links, by interface.
fn pinned_links(pin_dir: &Path) -> anyhow::Result<BTreeMap<String, Vec<PathBuf>>> {
    let list = |dir: &Path| -> std::io::Result<Vec<PathBuf>> {
        match std::fs::read_dir(dir) {
            Ok(entries) => Ok(entries.filter_map(|e| Some(e.ok()?.path())).collect()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(err) => Err(err),
        }
    };
    let mut links = BTreeMap::new();
    for dir in list(&link_dir(pin_dir)).context("reading the pinned links")? {
        let interface = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        links.insert(interface, list(&dir).context("reading the pinned links")?);
    }
    Ok(links)
}

/// Unpins a link, which detaches its program.
fn detach(pin: &Path) -> anyhow::Result<()> {
    match PinnedLink::from_pin(pin) {
        Ok(link) => drop(link.unpin().with_context(|| format!("unpinning {}", pin.display()))?),
        Err(_) => std::fs::remove_file(pin).with_context(|| format!("removing {}", pin.display()))?,
    }
    Ok(())
}

/// Removes everything an agent installed: links (detaching the programs,
/// the socket ones too), pinned maps, the pin directory and the redirect
/// routing.
pub fn uninstall(pin_dir: &Path) -> anyhow::Result<()> {
    sock::uninstall(pin_dir)?;
    uninstall_pins(pin_dir)?;
    remove_redirect_routing()
}

/// Removes the links and maps pinned under `pin_dir`, and the directory.
fn uninstall_pins(pin_dir: &Path) -> anyhow::Result<()> {
    for pin in pinned_links(pin_dir)?.values().flatten() {
        detach(pin)?;
    }
    for dir in [link_dir(pin_dir), map_dir(pin_dir)] {
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
    }
    if pin_dir.exists() {
        std::fs::remove_dir(pin_dir).with_context(|| format!("removing {}", pin_dir.display()))?;
    }
    Ok(())
}
