//! Service translation at the socket (`bpf/sock.c`): the four cgroup
//! sock_addr programs, attached to a cgroup v2 directory so that they act
//! on every socket of the processes below it, and the service maps they
//! read, kept equal to a [`ServiceTable`] by diff.
//!
//! The links are pinned under `sock/cgroup-<id>/` in the pin directory
//! (the cgroup's inode number is its id), the maps beside the others in
//! `maps/`. A restarted agent swaps its programs into the pinned links
//! atomically, so translation never stops; attaching to another cgroup
//! detaches from the old one once the new one translates.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use aya::maps::{HashMap as BpfHashMap, MapData};
use aya::programs::cgroup_sock_addr::CgroupSockAddrLink;
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::{CgroupAttachMode, CgroupSockAddr};
use aya::{Ebpf, EbpfLoader};

use super::abi::{BACKENDS_MAX, BackendKey, BackendValue, SERVICES_MAX, ServiceKey, ServiceValue};
use super::maps::content;
use super::{detach, ensure_bpffs, map_dir};
use crate::service::ServiceTable;

const SOCK: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sock.o"));

/// The programs, named after their attach points.
const PROGRAMS: [&str; 4] = ["sock_connect4", "sock_sendmsg4", "sock_recvmsg4", "sock_getpeername4"];

/// Where cgroup2 sits on systems with both cgroup versions (hybrid mode).
const HYBRID_CGROUP2: &str = "/sys/fs/cgroup/unified";

/// The loaded socket programs and the service maps.
#[derive(Debug)]
pub struct SocketLb {
    pin_dir: PathBuf,
    ebpf: Ebpf,
    services: BpfHashMap<MapData, ServiceKey, ServiceValue>,
    backends: BpfHashMap<MapData, BackendKey, BackendValue>,
}

fn links_dir(pin_dir: &Path) -> PathBuf {
    pin_dir.join("sock")
}

impl SocketLb {
    /// Loads the programs; service maps already pinned under `pin_dir` (by
    /// an earlier run) are reused with their contents.
    pub fn load(pin_dir: &Path) -> anyhow::Result<SocketLb> {
        ensure_bpffs()?;
        let maps = map_dir(pin_dir);
        std::fs::create_dir_all(&maps).with_context(|| format!("creating {}", maps.display()))?;
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(&maps)
            .load(SOCK)
            .context("loading the socket programs")?;
        for name in PROGRAMS {
            program(&mut ebpf, name)?.load().with_context(|| format!("verifying the {name} program"))?;
        }
        let mut take = |name: &str| ebpf.take_map(name).with_context(|| format!("map {name} missing"));
        let services = BpfHashMap::try_from(take("porin_services")?)?;
        let backends = BpfHashMap::try_from(take("porin_backends")?)?;
        Ok(SocketLb { pin_dir: pin_dir.to_path_buf(), ebpf, services, backends })
    }

    /// Attaches the programs to `cgroup` (a cgroup v2 directory), taking
    /// over links an earlier run pinned there, and detaches them from any
    /// other cgroup they were attached to.
    pub fn attach(&mut self, cgroup: &Path) -> anyhow::Result<()> {
        check_cgroup2(cgroup)?;
        let directory = File::open(cgroup).with_context(|| format!("opening {}", cgroup.display()))?;
        let id = directory.metadata()?.ino();
        let dir = links_dir(&self.pin_dir).join(format!("cgroup-{id}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for name in PROGRAMS {
            let pin = dir.join(name);
            let program = program(&mut self.ebpf, name)?;
            let link_id = match pin.exists().then(|| PinnedLink::from_pin(&pin)).transpose() {
                Ok(Some(pinned)) => {
                    program.attach_to_link(CgroupSockAddrLink::try_from(FdLink::from(pinned))?)
                }
                Ok(None) | Err(_) => {
                    std::fs::remove_file(&pin).ok();
                    // A link runs alongside other programs of the cgroup
                    // whatever the mode; the kernel wants no flags for it.
                    program.attach(&directory, CgroupAttachMode::Single)
                }
            }
            .with_context(|| format!("attaching {name} to {}", cgroup.display()))?;
            let link = FdLink::try_from(program.take_link(link_id)?)?;
            if !pin.exists() {
                link.pin(&pin).with_context(|| format!("pinning {}", pin.display()))?;
            }
        }
        for entry in std::fs::read_dir(links_dir(&self.pin_dir))? {
            let other = entry?.path();
            if other != dir {
                detach_dir(&other)?;
            }
        }
        Ok(())
    }

    /// Makes the service maps say what `table` says. Existing services keep
    /// their ids; a service's backend slots are written before its count
    /// grows and removed after it shrinks, so a lookup never misses.
    pub fn write(&mut self, table: &ServiceTable) -> anyhow::Result<()> {
        let desired: BTreeMap<ServiceKey, Vec<BackendValue>> = table
            .frontends
            .iter()
            .map(|(frontend, backends)| {
                let key = ServiceKey {
                    address: frontend.address.octets(),
                    port: frontend.port.to_be_bytes(),
                    protocol: frontend.protocol.ip_proto(),
                    pad: 0,
                };
                let values = backends
                    .addresses
                    .iter()
                    .map(|b| BackendValue { address: b.ip().octets(), port: b.port().to_be_bytes(), pad: 0 })
                    .collect();
                (key, values)
            })
            .collect();
        let backend_count: usize = desired.values().map(Vec::len).sum();
        if desired.len() > SERVICES_MAX as usize || backend_count > BACKENDS_MAX as usize {
            bail!(
                "{} service frontends with {backend_count} backends exceed the service maps \
                 ({SERVICES_MAX} and {BACKENDS_MAX}); the services in force are unchanged",
                desired.len()
            );
        }
        let current_services = content(self.services.iter(), |key: ServiceKey| key)?;
        let current_backends = content(self.backends.iter(), |key: BackendKey| key)?;

        let mut used: BTreeSet<u32> = current_services.values().map(|value| value.id).collect();
        let mut counts = BTreeMap::new();
        let mut next_free = 1;
        for (key, backends) in &desired {
            let id = match current_services.get(key) {
                Some(value) => value.id,
                None => {
                    while used.contains(&next_free) {
                        next_free += 1;
                    }
                    used.insert(next_free);
                    next_free
                }
            };
            for (slot, backend) in (0u32..).zip(backends) {
                let slot = BackendKey { service: id, slot };
                if current_backends.get(&slot) != Some(backend) {
                    self.backends.insert(&slot, backend, 0).context("writing porin_backends")?;
                }
            }
            let value = ServiceValue { id, count: backends.len() as u32 };
            if current_services.get(key) != Some(&value) {
                self.services.insert(key, &value, 0).context("writing porin_services")?;
            }
            counts.insert(id, value.count);
        }
        for key in current_services.keys().filter(|key| !desired.contains_key(*key)) {
            self.services.remove(key).context("writing porin_services")?;
        }
        for slot in current_backends.keys() {
            if counts.get(&slot.service).is_none_or(|count| slot.slot >= *count) {
                self.backends.remove(slot).context("writing porin_backends")?;
            }
        }
        Ok(())
    }
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> anyhow::Result<&'a mut CgroupSockAddr> {
    let program = ebpf.program_mut(name).with_context(|| format!("no program {name}"))?;
    Ok(program.try_into()?)
}

/// Detaches the links pinned in `dir` and removes it.
fn detach_dir(dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        detach(&entry?.path())?;
    }
    std::fs::remove_dir(dir).with_context(|| format!("removing {}", dir.display()))
}

/// Detaches the socket programs from every cgroup (`porin agent uninstall`).
pub fn uninstall(pin_dir: &Path) -> anyhow::Result<()> {
    let dir = links_dir(pin_dir);
    if !dir.exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        detach_dir(&entry?.path())?;
    }
    std::fs::remove_dir(&dir).with_context(|| format!("removing {}", dir.display()))
}

/// The cgroup v2 root: `/sys/fs/cgroup/unified` on hybrid systems, else
/// `/sys/fs/cgroup`.
pub fn default_cgroup_root() -> PathBuf {
    match check_cgroup2(Path::new(HYBRID_CGROUP2)) {
        Ok(()) => PathBuf::from(HYBRID_CGROUP2),
        Err(_) => PathBuf::from("/sys/fs/cgroup"),
    }
}

/// Fails unless `path` is a directory of a cgroup v2 hierarchy.
pub fn check_cgroup2(path: &Path) -> anyhow::Result<()> {
    let real = path.canonicalize().with_context(|| format!("cgroup {} does not exist", path.display()))?;
    let mounts = std::fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    // The mount holding `real` is the longest mount point above it.
    let fstype = mounts
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            Some((*fields.get(1)?, *fields.get(2)?))
        })
        .filter(|(point, _)| real.starts_with(point))
        .max_by_key(|(point, _)| point.len())
        .map(|(_, fstype)| fstype);
    if fstype != Some("cgroup2") || !real.join("cgroup.procs").exists() {
        bail!(
            "{} is not a cgroup v2 directory (cgroup2 is usually mounted at /sys/fs/cgroup, \
             or at {HYBRID_CGROUP2} next to cgroup v1); give one with --cgroup-root",
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests;
