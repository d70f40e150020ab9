//! The service maps as [`SocketLb::write`] leaves them, on the real maps
//! (root needed; skipped loudly otherwise, failing in CI).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

use super::*;
use crate::datapath::tests::privileged;
use crate::policy::resolved::Protocol;
use crate::service::{Backends, Frontend};

/// Removes the pinned maps, also when the test fails.
struct Pins(PathBuf);

impl Drop for Pins {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

const FRONTEND: Frontend =
    Frontend { address: Ipv4Addr::new(10, 96, 0, 20), port: 80, protocol: Protocol::Tcp };

fn table(backends: &[u8]) -> ServiceTable {
    let addresses =
        backends.iter().map(|last| SocketAddrV4::new(Ipv4Addr::new(10, 1, 0, *last), 8080)).collect();
    let backends = Backends { service: "app/api".to_string(), addresses };
    ServiceTable { frontends: BTreeMap::from([(FRONTEND, backends)]) }
}

/// The maps' content: services as (id, count), backend slots as (id, slot,
/// the backend address's last octet).
type Content = (Vec<(u32, u32)>, Vec<(u32, u32, u8)>);

fn read(lb: &SocketLb) -> Content {
    let services = content(lb.services.iter(), |key: ServiceKey| key).unwrap();
    let backends = content(lb.backends.iter(), |key: BackendKey| key).unwrap();
    (
        services.values().map(|v| (v.id, v.count)).collect(),
        backends.iter().map(|(k, v)| (k.service, k.slot, v.address[3])).collect(),
    )
}

#[test]
fn services_keep_their_id_and_slots_follow_the_backends() {
    if !privileged("the service map tests") {
        return;
    }
    let pin_dir = PathBuf::from(format!("/sys/fs/bpf/porin-unit-sock-{}", std::process::id()));
    let _pins = Pins(pin_dir.clone());
    let mut lb = SocketLb::load(&pin_dir).expect("the socket programs load and verify");

    lb.write(&table(&[1, 2, 3])).unwrap();
    assert_eq!(read(&lb), (vec![(1, 3)], vec![(1, 0, 1), (1, 1, 2), (1, 2, 3)]));
    lb.write(&table(&[2])).unwrap();
    assert_eq!(read(&lb), (vec![(1, 1)], vec![(1, 0, 2)]), "same id, slots beyond the count removed");
    lb.write(&table(&[])).unwrap();
    assert_eq!(read(&lb), (vec![(1, 0)], vec![]), "no backends: the frontend stays and refuses");
    lb.write(&ServiceTable::default()).unwrap();
    assert_eq!(read(&lb), (vec![], vec![]));
    // A new run finds the pinned maps with their content.
    lb.write(&table(&[4, 5])).unwrap();
    drop(lb);
    let reloaded = SocketLb::load(&pin_dir).unwrap();
    assert_eq!(read(&reloaded), (vec![(1, 2)], vec![(1, 0, 4), (1, 1, 5)]));
}
