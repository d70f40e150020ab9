//! The lab's pure parts: objects as stored for the agent, the cluster DNS's
//! records, programs by image, names. (tests/all/lab.rs runs real labs.)

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::netns::Pod;
use super::objects::Document;
use super::state::LabPod;
use super::{DEFAULT_APP, Lab, Program, dns};
use crate::diagnostic::{Location, has_errors};
use crate::endpoint::Workloads;
use crate::manifest::Manifests;

fn default_app() -> Vec<Document> {
    DEFAULT_APP.iter().flat_map(|(_, text)| Document::parse_all(text).unwrap()).collect()
}

#[test]
fn objects_are_named_as_kubectl_names_them_and_stored_one_file_each() {
    let documents = default_app();
    let names: Vec<(String, String)> = documents.iter().map(|d| (d.reference(), d.file_name())).collect();
    assert!(names.contains(&("namespace/frontend".into(), "namespace_frontend.yaml".into())));
    assert!(names.contains(&("service/api".into(), "service_backend_api.yaml".into())));
    assert!(names.contains(&("deployment.apps/web".into(), "deployment.apps_frontend_web.yaml".into())));

    let policy = Document::parse_all(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\nspec: {endpointSelector: {}}\n\
         ---\napiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {name: c}\n\
         spec: {endpointSelector: {}}\n",
    )
    .unwrap();
    assert_eq!(policy[0].reference(), "ciliumnetworkpolicy.cilium.io/p");
    assert_eq!(policy[0].namespace.as_deref(), Some("default"), "namespaced objects land in default");
    assert!(policy[0].yaml().unwrap().contains("namespace: default"));
    assert_eq!(policy[1].file_name(), "ciliumclusterwidenetworkpolicy.cilium.io_c.yaml");
}

#[test]
fn a_deployment_is_stored_as_its_pod_with_the_address_the_agent_reads() {
    let documents = default_app();
    let mut manifests = Manifests::default();
    for (document, ip) in documents
        .iter()
        .filter_map(|d| d.workload().unwrap())
        .zip((10..).map(|n| Ipv4Addr::new(10, 244, 0, n)))
    {
        manifests.parse(&document.manifest(ip).unwrap(), Location::default());
    }
    assert!(!has_errors(&manifests.diagnostics), "{:?}", manifests.diagnostics);
    let (workloads, diagnostics) = Workloads::from_manifests(&manifests);
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    let coredns = workloads.endpoint("kube-system", "coredns").expect("the DNS pod");
    assert_eq!(coredns.ip, Some(Ipv4Addr::new(10, 244, 0, 13).into()));
    assert_eq!(coredns.labels, BTreeMap::from([("k8s-app".to_string(), "kube-dns".to_string())]));
    assert_eq!(coredns.service_account, "coredns", "the template's spec is kept whole");
    assert_eq!(coredns.named_ports["dns"].len(), 1);
}

#[test]
fn programs_come_from_images_and_postgres_gets_its_password_from_the_manifest() {
    for (image, program) in [
        ("nginx:1.27-alpine", Some(Program::Nginx)),
        ("docker.io/library/nginx@sha256:abc", Some(Program::Nginx)),
        ("localhost:5000/postgres:15", Some(Program::Postgres)),
        ("registry.k8s.io/coredns/coredns:v1.12.0", Some(Program::ClusterDns)),
        ("redis:7-alpine", Some(Program::Redis)),
        ("porin.dev/grpc-echo:1", Some(Program::GrpcEcho)),
        ("apache/kafka:3.9.0", Some(Program::Kafka)),
        ("ghcr.io/tansu-io/tansu", Some(Program::Kafka)),
        ("ghcr.io/nicolaka/netshoot", None),
    ] {
        assert_eq!(Program::for_image(image), program, "{image}");
    }
    let postgres =
        default_app().into_iter().find(|d| d.name == "postgres" && d.kind == "Deployment").unwrap();
    let (program, env) = postgres.workload().unwrap().unwrap().program().unwrap();
    assert_eq!(program, Program::Postgres);
    assert_eq!(env["POSTGRES_PASSWORD"], "pass");
}

#[test]
fn services_resolve_to_their_cluster_ip_once_the_lab_allocated_it() {
    let mut documents = default_app();
    let api =
        documents.iter_mut().find(|d| d.service().is_some_and(|(key, _)| key == "backend/api")).unwrap();
    api.set_cluster_ip(Ipv4Addr::new(10, 96, 0, 11));
    let mut manifests = Manifests::default();
    manifests.parse(&api.yaml().unwrap(), Location::default());
    let (workloads, _) = Workloads::from_manifests(&manifests);
    let hosts = dns::service_hosts(&workloads.services, &[]);
    assert_eq!(
        hosts.lines().nth(1),
        Some("10.96.0.11 api.backend.svc.cluster.local api.backend.svc"),
        "{hosts}"
    );
}

#[test]
fn headless_services_resolve_to_the_pods_they_select_in_their_namespace() {
    let pod = |namespace: &str, name: &str, app: &str, last: u8| LabPod {
        namespace: namespace.into(),
        name: name.into(),
        labels: BTreeMap::from([("app".to_string(), app.to_string())]),
        program: None,
        attachment: Pod {
            netns: format!("lab.{namespace}.{name}"),
            ip: Ipv4Addr::new(10, 244, 0, last),
            host_if: "lxc0".into(),
            cgroup: None,
        },
        processes: Vec::new(),
    };
    let pods = [
        pod("backend", "api", "api", 11),
        pod("backend", "api2", "api", 12),
        pod("frontend", "api", "api", 10),
    ];
    let text = DEFAULT_APP[0].1;
    let mut manifests = Manifests::default();
    manifests.parse(text, Location::default());
    let (workloads, _) = Workloads::from_manifests(&manifests);
    let hosts = dns::service_hosts(&workloads.services, &pods);
    let api: Vec<&str> = hosts.lines().filter(|l| l.contains("api.backend.svc.cluster.local")).collect();
    assert_eq!(
        api,
        [
            "10.244.0.11 api.backend.svc.cluster.local api.backend.svc",
            "10.244.0.12 api.backend.svc.cluster.local api.backend.svc"
        ]
    );
    assert!(!hosts.contains("web.frontend"), "no pod of frontend is labelled app=web");
    assert!(hosts.starts_with("10.96.0.1 kubernetes.default.svc.cluster.local"), "{hosts}");
    assert_eq!(
        dns::resolv_conf("db", Ipv4Addr::new(10, 244, 0, 13)),
        "search db.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.244.0.13\noptions ndots:5\n"
    );
}

#[test]
fn a_lab_owns_exactly_its_own_namespaces() {
    let lab = Lab::new("porin-lab").unwrap();
    assert!(lab.owns("porin-lab") && lab.owns("porin-lab.world") && lab.owns("porin-lab.db.postgres"));
    assert!(!lab.owns("porin-lab-t1-0") && !lab.owns("porin-lab-t1-0.world") && !lab.owns("porin-labx"));
    for bad in ["", "Lab", "a.b", "-x", "a/b", &"x".repeat(33)] {
        assert!(Lab::new(bad).is_err(), "{bad:?}");
    }
}
