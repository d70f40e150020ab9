//! `porin lab` end to end: the seed article's app in network namespaces with
//! the real programs and the agent, asked the article's questions (curl
//! through the cluster DNS, dig, psql, kubectl-like run/apply/delete), and
//! `lab down` leaving nothing behind, also after everything was SIGKILLed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use porin_tests::{
    Daemon, TempDir, build_sdk_example, fixture, have, have_browser, have_kafka_clients, kafka_client_script,
    must_run, output_within, porin_binary, python,
};

const WORLD_IP: &str = "198.51.100.10";

/// Every lab a test makes is named `porin-lab-t<pid>-<n>`.
const TEST_PREFIX: &str = "porin-lab-t";

fn can_run() -> bool {
    if !must_run() {
        eprintln!("SKIPPED: porin lab needs root (network namespaces, BPF); run as root or with CI set");
        return false;
    }
    ["ip", "nsenter", "curl", "dig", "psql", "dnsmasq"].iter().all(|program| have(program))
        && (Path::new("/usr/sbin/nginx").exists() || have("nginx"))
}

/// A lab of its own, taken down when dropped (also when the test fails).
struct TestLab {
    name: String,
}

impl TestLab {
    fn new() -> TestLab {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        remove_stale_labs();
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        TestLab { name: format!("{TEST_PREFIX}{}-{n}", std::process::id()) }
    }

    /// `porin lab --name NAME ARGS...`, killed if it hangs.
    fn run(&self, args: &[&str]) -> Output {
        lab_command(&self.name, args)
    }

    /// Like [`TestLab::run`]; panics with the output unless it succeeds.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
        assert!(output.status.success(), "porin lab {args:?} failed:\n{stdout}\n{stderr}");
        stdout
    }

    fn state(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.dir().join("state.json")).expect("the lab has a state");
        serde_json::from_str(&text).expect("state.json is JSON")
    }

    fn dir(&self) -> PathBuf {
        Path::new("/run").join(&self.name)
    }

    /// Every PID the state records: agent, world and pod programs.
    fn pids(&self) -> Vec<u32> {
        let state = self.state();
        let mut pids = vec![state["agent"].as_u64().expect("an agent PID") as u32];
        let processes = std::iter::once(&state["world"]).chain(state["pods"].as_array().unwrap());
        for process in processes.flat_map(|member| member["processes"].as_array().unwrap()) {
            pids.push(process["pid"].as_u64().unwrap() as u32);
        }
        pids
    }

    /// Asserts that nothing of the lab is left: namespaces, pins, state,
    /// resolv.conf files, and the processes `pids`.
    fn assert_gone(&self, pids: &[u32]) {
        let own = |name: &str| name == self.name || name.starts_with(&format!("{}.", self.name));
        let left: Vec<String> = list_netns().into_iter().filter(|n| own(n)).collect();
        assert!(left.is_empty(), "namespaces left: {left:?}");
        assert!(!Path::new("/sys/fs/bpf").join(&self.name).exists(), "pins left");
        let cgroup = porin::datapath::sock::default_cgroup_root().join(format!("porin-lab-{}", self.name));
        assert!(!cgroup.exists(), "cgroup left");
        assert!(!self.dir().exists(), "state left");
        let etc: Vec<_> = std::fs::read_dir("/etc/netns")
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().to_str().is_some_and(own))
            .collect();
        assert!(etc.is_empty(), "/etc/netns entries left: {etc:?}");
        for pid in pids {
            assert!(!alive(*pid), "process {pid} still runs");
        }
    }
}

impl Drop for TestLab {
    fn drop(&mut self) {
        self.run(&["down"]);
    }
}

fn lab_command(name: &str, args: &[&str]) -> Output {
    let mut command = Command::new(porin_binary());
    command.args(["lab", "--name", name]).args(args).env_remove("PORIN_LAB_DIR");
    output_within(&mut command, b"", Duration::from_secs(240))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, None | Some("Z" | "X"))
}

fn list_netns() -> Vec<String> {
    let output = Command::new("ip").args(["netns", "list"]).output().expect("ip runs");
    text(&output.stdout).lines().filter_map(|l| l.split_whitespace().next().map(str::to_string)).collect()
}

/// Takes down labs left by test processes that crashed: their name carries
/// a PID that no longer runs.
fn remove_stale_labs() {
    for netns in list_netns() {
        let Some(rest) = netns.strip_prefix(TEST_PREFIX) else { continue };
        let Some(Ok(pid)) = rest.split(['-', '.']).next().map(str::parse::<u32>) else { continue };
        if !netns.contains('.') && !Path::new(&format!("/proc/{pid}")).exists() {
            lab_command(&netns, &["down"]);
        }
    }
}

/// The IP of pod `namespace/name` from `porin lab get pods -A`.
fn pod_ip(lab: &TestLab, namespace: &str, name: &str) -> String {
    let pods = lab.ok(&["get", "pods", "-A"]);
    let row =
        pods.lines().map(|l| l.split_whitespace().collect::<Vec<_>>()).find(|c| c[..2] == [namespace, name]);
    row.unwrap_or_else(|| panic!("no pod {namespace}/{name}:\n{pods}"))[2].to_string()
}

/// `psql -c 'select 1'` against postgres.db from an ad-hoc backend pod answers 1.
fn assert_psql_from_backend(lab: &TestLab) {
    let psql = [
        "env",
        "PGPASSWORD=pass",
        "psql",
        "-h",
        "postgres.db.svc.cluster.local",
        "-U",
        "postgres",
        "-tAc",
        "select 1",
    ];
    let output = lab.run(&[&["run", "-n", "backend", "app", "--"][..], &psql].concat());
    assert_eq!(text(&output.stdout).trim(), "1", "{}", text(&output.stderr));
}

fn curl_api_from_web(lab: &TestLab) -> Output {
    lab.run(&[
        "exec",
        "frontend/web",
        "--",
        "curl",
        "-sI",
        "--max-time",
        "5",
        "http://api.backend.svc.cluster.local",
    ])
}

#[test]
fn the_seed_app_runs_in_the_lab_and_policy_applies_to_it() {
    if !can_run() {
        return;
    }
    let lab = TestLab::new();
    let up = lab.ok(&["up"]);
    assert!(up.contains("pod backend/api 10.244.0.") && up.contains("(postgres)"), "{up}");
    assert!(lab.run(&["up"]).status.code() != Some(0), "a second `up` is refused");

    let pods = lab.ok(&["get", "pods", "-A"]);
    for (namespace, name, program) in [
        ("frontend", "web", "nginx"),
        ("backend", "api", "nginx"),
        ("db", "postgres", "postgres"),
        ("kube-system", "coredns", "dnsmasq"),
    ] {
        assert!(pod_ip(&lab, namespace, name).starts_with("10.244.0."), "{pods}");
        let row = pods.lines().find(|l| l.contains(&format!(" {name} "))).unwrap();
        assert!(row.ends_with(program), "{row}");
    }
    let status = lab.run(&["status"]);
    assert!(status.status.success(), "every process runs:\n{}", text(&status.stdout));

    // Through the cluster DNS and the node's routing, past the datapath.
    let curl = curl_api_from_web(&lab);
    assert!(
        text(&curl.stdout).starts_with("HTTP/1.1 200 OK"),
        "{}{}",
        text(&curl.stdout),
        text(&curl.stderr)
    );

    // kubectl run: an ad-hoc pod, gone afterwards. Service names resolve to
    // ClusterIPs, which the socket programs translate to the pods.
    let api = pod_ip(&lab, "backend", "api");
    let dig =
        lab.run(&["run", "-n", "frontend", "test", "--", "dig", "+short", "api.backend.svc.cluster.local"]);
    let cluster_ip = text(&dig.stdout).trim().to_string();
    assert!(cluster_ip.starts_with("10.96.") && cluster_ip != api, "{cluster_ip}: {}", text(&dig.stderr));
    assert!(dig.status.success());
    let getent = lab.run(&["exec", "frontend/web", "--", "getent", "hosts", "api.backend.svc.cluster.local"]);
    assert!(text(&getent.stdout).starts_with(&format!("{cluster_ip} ")), "{}", text(&getent.stdout));
    let page = lab.run(&[
        "exec",
        "frontend/web",
        "--",
        "curl",
        "-s",
        "--max-time",
        "5",
        &format!("http://{cluster_ip}/"),
    ]);
    assert!(text(&page.stdout).contains("Welcome to nginx!"), "{}", text(&page.stderr));
    assert!(!lab.ok(&["get", "pods", "-n", "frontend"]).contains("test"), "the ad-hoc pod is removed");
    assert!(!list_netns().contains(&format!("{}.frontend.test", lab.name)));
    let failing = lab.run(&["run", "-n", "frontend", "test", "--", "sh", "-c", "exit 3"]);
    assert_eq!(failing.status.code(), Some(3), "the command's exit code is porin's");

    // External names come from the world.
    let world = lab.run(&["exec", "frontend/web", "--", "dig", "+short", "example.com"]);
    assert_eq!(text(&world.stdout).trim(), WORLD_IP);

    // Postgres with the manifest's password, by its service name.
    assert_psql_from_backend(&lab);

    // An invalid policy is refused with the loader's diagnostics; nothing changes.
    let dir = TempDir::new("lab-bad");
    let bad = dir.path("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: bad, namespace: frontend}\n\
         spec:\n  endpointSelector: {}\n  egress:\n    - toPorts: [{ports: [{port: \"80\", protocol: tcp}]}]\n",
    )
    .unwrap();
    let refused = lab.run(&["apply", "-f", bad.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("unknown protocol"), "{}", text(&refused.stderr));

    // The article's first policy: frontend is cut off; deleting it restores.
    let deny = fixture("seed/cnp-default-deny.yaml");
    let applied = lab.ok(&["apply", "-f", deny.to_str().unwrap()]);
    assert_eq!(applied.trim(), "ciliumnetworkpolicy.cilium.io/cnp-default-deny created");
    let listed = lab.ok(&["get", "cnp", "-n", "frontend"]);
    assert!(listed.contains("cnp-default-deny") && !listed.contains("bad"), "{listed}");
    assert!(!curl_api_from_web(&lab).status.success(), "default deny stops frontend's egress");
    assert_eq!(
        lab.ok(&["apply", "-f", deny.to_str().unwrap()]).trim(),
        "ciliumnetworkpolicy.cilium.io/cnp-default-deny unchanged"
    );
    let deleted = lab.ok(&["delete", "-f", deny.to_str().unwrap()]);
    assert_eq!(deleted.trim(), "ciliumnetworkpolicy.cilium.io/cnp-default-deny deleted");
    assert!(curl_api_from_web(&lab).status.success(), "deleting the policy restores the path");

    let pids = lab.pids();
    let down = lab.ok(&["down"]);
    assert!(down.contains("is down"), "{down}");
    lab.assert_gone(&pids);
    assert!(lab.run(&["down"]).status.success(), "down is idempotent");
}

#[test]
fn down_cleans_up_after_everything_was_killed() {
    if !can_run() {
        return;
    }
    let lab = TestLab::new();
    let dir = TempDir::new("lab-small");
    let app = dir.path("app.yaml");
    std::fs::write(
        &app,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: t, labels: {app: web}}\n\
         spec: {containers: [{name: web, image: nginx:latest}]}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {name: idle, namespace: t}\n\
         spec: {containers: [{name: idle, image: busybox}]}\n",
    )
    .unwrap();
    lab.ok(&["up", "-f", app.to_str().unwrap()]);
    let pids = lab.pids();
    assert!(pids.len() >= 4, "agent, world's dnsmasq and nginx, web's nginx: {pids:?}");
    for pid in &pids {
        Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
    }
    let status = lab.run(&["status"]);
    assert!(!status.status.success(), "status reports the dead processes");
    assert!(text(&status.stdout).contains("NOT RUNNING"), "{}", text(&status.stdout));

    lab.ok(&["down"]);
    lab.assert_gone(&pids);
}

/// Counts DNS answers for kubernetes.default every 20 ms until `stop`
/// exists, then prints `answered failed longest-gap-ms`.
const DNS_PROBER: &str = r#"
import os, socket, struct, sys, time
server = [l.split()[1] for l in open("/etc/resolv.conf") if l.startswith("nameserver")][0]
name = b"".join(bytes([len(p)]) + p for p in b"kubernetes.default.svc.cluster.local".split(b".")) + b"\0"
answered = failed = 0; last_ok = time.time(); gap = 0.0
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.2)
while not os.path.exists(sys.argv[1]):
    qid = (answered + failed) & 0xFFFF
    s.sendto(struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + name + b"\0\1\0\1", (server, 53))
    try:
        while struct.unpack("!H", s.recv(512)[:2])[0] != qid: pass
        answered += 1; now = time.time(); gap = max(gap, now - last_ok); last_ok = now
    except OSError:
        failed += 1
    time.sleep(0.02)
print(answered, failed, int(gap * 1000), flush=True)
"#;

/// Restarting the agent (gracefully, then by SIGKILL) under traffic: the
/// datapath keeps enforcing (a denied path never opens) and the cluster DNS
/// keeps answering; the longest DNS gap is printed for the record.
#[test]
fn restarting_the_agent_under_traffic_opens_nothing_and_keeps_dns() {
    if !can_run() || !have("nc") {
        return;
    }
    let lab = TestLab::new();
    lab.ok(&["up"]);
    for file in ["cnp-deny-all", "ccnp-allow-dns", "cnp-ns-dns", "cnp-front-to-back", "cnp-back-to-db"] {
        lab.ok(&["apply", "-f", fixture(&format!("seed/{file}.yaml")).to_str().unwrap()]);
    }
    let dir = TempDir::new("lab-restart");
    let stop = dir.path("stop");
    let python = porin_tests::python();
    let spawn = |args: &[&str]| {
        let mut command = Command::new(porin_binary());
        command.args(["lab", "--name", &lab.name, "exec", "frontend/web", "--"]).args(args);
        command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null());
        porin_tests::Process(command.spawn().expect("porin lab exec runs"))
    };
    let mut dns = spawn(&[&python, "-c", DNS_PROBER, stop.to_str().unwrap()]);
    // frontend -> postgres stays denied: no attempt may connect.
    let prober = format!(
        "import os, socket, time\nok = 0\nwhile not os.path.exists({stop:?}):\n    try:\n        \
         socket.create_connection(('postgres.db.svc.cluster.local', 5432), timeout=0.2).close(); ok += 1\n    \
         except OSError: pass\n    time.sleep(0.02)\nprint(ok, flush=True)\n",
        stop = stop.to_str().unwrap()
    );
    let mut denied = spawn(&[&python, "-c", &prober]);
    std::thread::sleep(Duration::from_secs(1));
    lab.ok(&["restart-agent"]);
    lab.ok(&["restart-agent", "--kill"]);
    std::thread::sleep(Duration::from_secs(1));
    std::fs::write(&stop, "").unwrap();
    let read = |process: &mut porin_tests::Process| {
        let mut text = String::new();
        std::io::Read::read_to_string(process.0.stdout.as_mut().unwrap(), &mut text).unwrap();
        text
    };
    let counts: Vec<u64> = read(&mut dns).split_whitespace().map(|n| n.parse().unwrap()).collect();
    let [answered, failed, gap_ms] = counts[..] else { panic!("the DNS prober printed {counts:?}") };
    eprintln!("DNS across two agent restarts: {answered} answered, {failed} failed, longest gap {gap_ms} ms");
    assert!(answered > 50, "the prober ran");
    assert_eq!(failed, 0, "DNS (plain L4 policy) keeps answering while the agent restarts");
    assert_eq!(read(&mut denied).trim(), "0", "a denied path opened while the agent restarted");
    // The new agent is in charge: a policy change still applies.
    lab.ok(&["delete", "-f", fixture("seed/cnp-back-to-db.yaml").to_str().unwrap()]);
    let nc =
        ["run", "-n", "backend", "app", "--", "nc", "-z", "-w", "2", "postgres.db.svc.cluster.local", "5432"];
    let nc = lab.run(&nc);
    assert!(!nc.status.success(), "backend -> postgres closed after the restart");
}

/// The article's story, step by step, with its own commands and real
/// clients in the lab; every outcome asserted on the client's output.
#[test]
fn the_seed_article_end_to_end() {
    if !can_run() || !have("nc") {
        return;
    }
    let lab = TestLab::new();
    lab.ok(&["up"]);
    let apply = |file: &str| lab.ok(&["apply", "-f", fixture(file).to_str().unwrap()]);
    // `kubectl run -n NS NAME --rm -- CMD`
    let run = |namespace: &str, pod: &str, command: &[&str]| {
        lab.run(&[&["run", "-n", namespace, pod, "--"], command].concat())
    };
    let curl_head = || {
        run("frontend", "test", &["curl", "-sI", "--max-time", "5", "http://api.backend.svc.cluster.local"])
    };
    let nc_postgres = |namespace| {
        run(namespace, "test", &["nc", "-vz", "-w", "3", "postgres.db.svc.cluster.local", "5432"])
    };
    let dig = |name: &str| run("frontend", "test", &["dig", "+short", "+time=2", "+tries=1", name]);
    let http_code = |method: &str, path: &str| {
        let url = format!("http://api.backend.svc.cluster.local{path}");
        let out = run(
            "frontend",
            "test",
            &["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "-X", method, &url],
        );
        text(&out.stdout)
    };

    // Baseline: everything flows.
    let head = curl_head();
    assert!(text(&head.stdout).starts_with("HTTP/1.1 200 OK"), "{}", text(&head.stderr));
    let nc = nc_postgres("frontend");
    assert!(nc.status.success() && text(&nc.stderr).contains("succeeded"), "{}", text(&nc.stderr));
    assert_eq!(text(&dig("kubernetes.default.svc.cluster.local").stdout).trim(), "10.96.0.1");

    // cnp-default-deny in frontend: no ingress, no egress, no DNS.
    apply("seed/cnp-default-deny.yaml");
    assert!(!curl_head().status.success(), "curl fails under default deny");
    assert!(!nc_postgres("frontend").status.success(), "nc fails under default deny");
    let denied_dig = dig("kubernetes.default.svc.cluster.local");
    assert!(!denied_dig.status.success(), "dig fails: {}", text(&denied_dig.stdout));
    lab.ok(&["delete", "-f", fixture("seed/cnp-default-deny.yaml").to_str().unwrap()]);

    // Zero trust everywhere, then the paths the app needs.
    for file in ["cnp-deny-all", "ccnp-allow-dns", "cnp-ns-dns", "cnp-front-to-back", "cnp-back-to-db"] {
        apply(&format!("seed/{file}.yaml"));
    }
    let head = curl_head();
    assert!(text(&head.stdout).starts_with("HTTP/1.1 200 OK"), "frontend -> api: {}", text(&head.stderr));
    assert!(nc_postgres("backend").status.success(), "backend -> postgres");
    assert_psql_from_backend(&lab);
    assert!(!nc_postgres("frontend").status.success(), "frontend -> postgres is denied");
    assert_eq!(text(&dig("kubernetes.default.svc.cluster.local").stdout).trim(), "10.96.0.1", "DNS works");

    // L7 visibility: `http: [{}]` sends port 80 through the http filter both
    // ways (frontend's egress, api's ingress); nothing is denied.
    apply("seed/cnp-front-to-back-l7.yaml");
    assert_eq!(http_code("GET", "/"), "200");
    assert_eq!(http_code("GET", "/h"), "404");
    let flows = std::fs::read_to_string(lab.dir().join("flows.jsonl")).unwrap();
    let l7: Vec<serde_json::Value> = flows
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|f| f["Type"] == "L7" && f["l7"]["type"] == "RESPONSE")
        .collect();
    for code in [200, 404] {
        assert!(l7.iter().any(|f| f["l7"]["http"]["code"] == code), "an L7 flow with {code}: {l7:#?}");
    }

    // Enforcing: only `GET /` is allowed; porin answers the rest with 403.
    apply("lab/cnp-front-to-back-get-only.yaml");
    assert_eq!(http_code("POST", "/admin"), "403");
    assert_eq!(http_code("GET", "/"), "200");

    // The article's second half: seeing it all, as with hubble observe.
    observe_the_seed_flows(&lab);
    scrape_the_seed_metrics(&lab);
    web_ui_shows_live_flows(&lab, &run);
}

/// `porin lab observe ARGS` (piped, so without colours): its lines.
fn observe(lab: &TestLab, args: &[&str]) -> Vec<String> {
    lab.ok(&[&["observe"], args].concat()).lines().map(str::to_string).collect()
}

/// The seed's flows through `porin lab observe`: forwarded and dropped
/// connections with namespaces, pods and identities, and the L7 requests
/// with their status codes, in Hubble's compact format.
fn observe_the_seed_flows(lab: &TestLab) {
    let all = observe(lab, &["--last", "10000"]);
    assert!(!all.is_empty() && all.iter().all(|l| !l.contains('\x1b')), "plain lines when piped: {all:#?}");
    let get = observe(lab, &["--http-method", "GET", "--to-pod", "backend/api", "--last", "10000"]);
    let request = "http-request FORWARDED (HTTP/1.1 GET http://api.backend.svc.cluster.local/)";
    assert!(
        get.iter().any(|l| l.contains("frontend/test:")
            && l.contains("-> backend/api:80 (ID:")
            && l.ends_with(request)),
        "{get:#?}"
    );
    let ok = observe(lab, &["--http-status", "200", "--last", "10000"]);
    assert!(ok.iter().any(|l| l.contains("http-response FORWARDED (HTTP/1.1 200 ")), "{ok:#?}");
    assert!(ok.iter().all(|l| l.contains("HTTP/1.1 200 ")), "only 200s: {ok:#?}");
    let forbidden = observe(lab, &["--http-method", "POST", "--verdict", "DROPPED", "--last", "10000"]);
    assert!(
        forbidden.iter().any(|l| l
            .ends_with("http-request DROPPED (HTTP/1.1 POST http://api.backend.svc.cluster.local/admin)")),
        "{forbidden:#?}"
    );
    let denied = observe(lab, &["--to-pod", "db/postgres", "--verdict", "DROPPED", "--last", "10000"]);
    assert!(
        denied.iter().any(|l| l.contains("frontend/test:")
            && l.contains("-> db/postgres:5432 (ID:")
            && l.contains("Policy denied DROPPED")),
        "frontend -> postgres shows as dropped: {denied:#?}"
    );
    let forwarded = observe(
        lab,
        &["--from-pod", "backend/", "--to-pod", "db/", "--verdict", "FORWARDED", "--last", "10000"],
    );
    assert!(forwarded.iter().any(|l| l.contains("-> db/postgres:5432") && l.contains("policy-verdict:L3-L4 EGRESS FORWARDED")), "{forwarded:#?}");

    // JSON keeps Hubble's names and the enrichment (workloads from the Deployment).
    let json = observe(lab, &["-o", "json", "--to-pod", "backend/api", "--protocol", "http", "--last", "1"]);
    let flow: serde_json::Value = serde_json::from_str(&json[0]).unwrap();
    assert_eq!(
        flow["flow"]["destination"]["workloads"][0],
        serde_json::json!({"name": "api", "kind": "Deployment"})
    );
    assert_eq!(flow["flow"]["destination"]["namespace"], "backend");
    assert!(
        flow["flow"]["destination"]["labels"].as_array().unwrap().iter().any(|l| l == "k8s:app=api"),
        "{flow}"
    );
    assert_eq!(flow["flow"]["proxy"]["filter"], "http", "{flow}");
    let table = observe(lab, &["-o", "table", "--last", "3"]);
    assert!(table[0].starts_with("TIMESTAMP") && table.len() == 4, "{table:#?}");

    let bad = lab.run(&["observe", "--verdict", "ALLOWED"]);
    assert!(!bad.status.success() && text(&bad.stderr).contains("verdict"), "{}", text(&bad.stderr));
}

/// `GET /metrics` on the agent's socket, as Prometheus scrapes it.
fn scrape_the_seed_metrics(lab: &TestLab) {
    let socket = lab.dir().join("agent.sock");
    let output = output_within(
        Command::new("curl").args(["-sf", "--unix-socket"]).arg(&socket).arg("http://agent/metrics"),
        b"",
        Duration::from_secs(30),
    );
    let metrics = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let value = |prefix: &str| -> f64 {
        let line = metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix}:\n{metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(value("porin_flows_processed_total{type=\"L7\",verdict=\"FORWARDED\"}") > 0.0);
    assert!(value("porin_flows_processed_total{type=\"L3_L4\",verdict=\"DROPPED\"}") > 0.0);
    assert!(value("porin_drops_total{reason=\"POLICY_DENIED\",protocol=\"TCP\"}") > 0.0);
    assert!(value("porin_http_requests_total{method=\"GET\",protocol=\"HTTP/1.1\"}") >= 2.0);
    assert!(value("porin_http_responses_total{method=\"GET\",status=\"200\"}") >= 1.0);
    assert!(value("porin_http_responses_total{method=\"GET\",status=\"404\"}") >= 1.0);
    assert!(value("porin_http_request_duration_seconds_count{method=\"GET\"}") >= 2.0);
    assert!(value("porin_datapath_events_total{counter=\"dropped\"}") > 0.0);
    assert!(value("porin_proxy_connections_total{") > 0.0);
    assert!(value("porin_flow_store_flows") > 0.0);
}

/// The web UI in a real headless browser: the page is loaded first, then
/// traffic from a new pod must appear as a forwarded edge to the api, a
/// dropped edge to postgres, and L7 rows with the GET and its 200.
fn web_ui_shows_live_flows(lab: &TestLab, run: &dyn Fn(&str, &str, &[&str]) -> Output) {
    if !have_browser() {
        return;
    }
    let mut ui = Command::new(porin_binary());
    ui.args(["lab", "--name", &lab.name, "ui", "--listen", "127.0.0.1:0"]).env_remove("PORIN_LAB_DIR");
    let ui = Daemon::spawn(ui);
    let url = ui
        .stdout_line_containing("porin UI of lab")
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_string();
    let screenshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();
    let dir = TempDir::new("ui");
    let ready = dir.path("ready");
    let mut check = Command::new(python());
    check.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("browser/ui_check.py")).args([
        "--url",
        &url,
        "--timeout",
        "90",
    ]);
    check.arg("--screenshot").arg(screenshots.join("seed-lab.png")).arg("--ready-file").arg(&ready);
    for expect in [
        "--edge=frontend/uitest=>backend/api:FORWARDED",
        "--edge=frontend/uitest=>db/postgres:DROPPED",
        "--row=GET",
        "--row=HTTP/1.1 200",
    ] {
        check.arg(expect);
    }
    let check = std::thread::spawn(move || output_within(&mut check, b"", Duration::from_secs(180)));
    let waited = std::time::Instant::now();
    while !ready.exists() {
        assert!(waited.elapsed() < Duration::from_secs(120), "the UI never connected its flow stream");
        std::thread::sleep(Duration::from_millis(100));
    }
    let url = "http://api.backend.svc.cluster.local/";
    let curl = run("frontend", "uitest", &["curl", "-s", "-o", "/dev/null", "--max-time", "5", url]);
    assert!(curl.status.success(), "{}", text(&curl.stderr));
    let nc = run("frontend", "uitest", &["nc", "-vz", "-w", "3", "postgres.db.svc.cluster.local", "5432"]);
    assert!(!nc.status.success(), "frontend -> postgres stays denied");
    let checked = check.join().unwrap();
    assert!(
        checked.status.success(),
        "the UI check failed:\n{}\n{}",
        text(&checked.stdout),
        text(&checked.stderr)
    );
}

/// Beyond the article, with real clients in one lab: a DNS rule (frontend
/// resolves backend names only; porin's dns filter answers the rest with
/// REFUSED), a Kafka topic rule in front of a broker pod (the backend
/// produces to `orders`; `payments` gets TOPIC_AUTHORIZATION_FAILED), a
/// Redis rule through an SDK filter loaded by the agent (`public:*` keys
/// only; the rest gets NOPERM), and gRPC methods (Say and Count allowed,
/// Admin PERMISSION_DENIED) for the grpcio client and grpcurl.
#[test]
fn the_lab_beyond_the_seed_dns_kafka_and_redis_rules() {
    if !can_run() || !have_kafka_clients() || !have("redis-server") || !have("redis-cli") {
        return;
    }
    let lab = TestLab::new();
    lab.ok(&["up"]);
    // The agent loads extra filters from the lab's filters directory.
    std::fs::copy(build_sdk_example("redis_filter"), lab.dir().join("filters/redis.wasm")).unwrap();
    let policies =
        ["cnp-frontend-dns-names", "cnp-kafka-produce-orders", "cnp-redis-public-keys", "grpc-echo"];
    for file in std::iter::once("beyond-seed").chain(policies) {
        lab.ok(&["apply", "-f", fixture(&format!("lab/{file}.yaml")).to_str().unwrap()]);
    }
    let pods = lab.ok(&["get", "pods", "-n", "data"]);
    for (pod, program) in [("kafka", "tansu"), ("redis", "redis-server")] {
        assert!(pods.lines().any(|l| l.contains(&format!(" {pod} ")) && l.ends_with(program)), "{pods}");
    }

    let dig = |name: &str| {
        let out = lab.run(&["exec", "frontend/web", "--", "dig", "+time=2", "+tries=1", name]);
        text(&out.stdout)
    };
    let allowed = dig("api.backend.svc.cluster.local");
    assert!(allowed.contains("status: NOERROR"), "{allowed}");
    assert!(
        allowed.lines().any(|l| l.starts_with("api.backend.svc.cluster.local.") && l.contains("10.96.")),
        "{allowed}"
    );
    for name in ["postgres.db.svc.cluster.local", "example.com"] {
        let denied = dig(name);
        assert!(denied.contains("status: REFUSED"), "{name}: {denied}");
    }

    let script = kafka_client_script();
    // `kubectl exec` in the broker pod, as with kafka-topics.sh: kafka-python
    // waits for the metadata of a topic that was never created.
    let broker_bin = Command::new(python()).arg(&script).arg("broker-bin").output().expect("python runs");
    assert!(broker_bin.status.success(), "no tansu binary: {}", text(&broker_bin.stderr));
    let broker_bin = text(&broker_bin.stdout);
    for topic in ["orders", "payments"] {
        let create = ["topic", "create", "--broker", "tcp://127.0.0.1:9092", "--partitions", "1", topic];
        lab.ok(&[&["exec", "data/kafka", "--", broker_bin.trim()], &create[..]].concat());
    }
    for lib in ["confluent", "kafka-python"] {
        let produce = lab.run(&[
            "run",
            "-n",
            "backend",
            "producer",
            "--",
            &python(),
            script.to_str().unwrap(),
            "produce",
            "--lib",
            lib,
            "--bootstrap",
            "kafka.data.svc.cluster.local:9092",
            "--count",
            "2",
            "orders",
            "payments",
        ]);
        let (stdout, stderr) = (text(&produce.stdout), text(&produce.stderr));
        assert!(produce.status.success(), "{lib}:\n{stdout}\n{stderr}");
        let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("a JSON report");
        let topics = &report["topics"];
        assert_eq!(topics["orders"], serde_json::json!({"ok": 2, "errors": []}), "{lib}: {report}");
        let refused = serde_json::json!({"ok": 0, "errors": ["TOPIC_AUTHORIZATION_FAILED"]});
        assert_eq!(topics["payments"], refused, "{lib}: {report}");
    }

    // Without a tty, redis-cli prints a reply a line, and errors without
    // their `(error)` prefix but with an empty line after them.
    let redis = |command: &str| format!("redis-cli -h redis.data.svc.cluster.local {command}");
    let commands = ["SET public:a 1", "GET public:a", "SET secret:b 2", "GET secret:b"].map(redis).join("; ");
    let cli = lab.run(&["run", "-n", "backend", "cli", "--", "sh", "-c", &commands]);
    let noperm = "NOPERM this command is not allowed by policy";
    let stdout = text(&cli.stdout);
    let replies: Vec<&str> = stdout.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(replies, ["OK", "1", noperm, noperm], "{}", text(&cli.stderr));
    // Straight to redis-server, inside its pod: the denied SET never arrived.
    let direct = lab.run(&["exec", "data/redis", "--", "redis-cli", "GET", "secret:b"]);
    assert_eq!(text(&direct.stdout).trim(), "", "redis-server holds secret:b");

    grpc_methods_are_enforced_in_the_lab(&lab);

    // The refusals are porin's: its filters recorded them as dropped L7 flows.
    let flows = std::fs::read_to_string(lab.dir().join("flows.jsonl")).unwrap();
    let flows: Vec<serde_json::Value> = flows.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    for filter in ["dns", "kafka", "redis", "http"] {
        let dropped = flows
            .iter()
            .any(|f| f["Type"] == "L7" && f["verdict"] == "DROPPED" && f["proxy"]["filter"] == filter);
        assert!(dropped, "no DROPPED L7 flow from the {filter} filter");
    }
    // And porin observe reads them like Hubble's L7 lines.
    let dns = observe(&lab, &["--protocol", "dns", "--dns-query", "^example\\.com\\.$", "--last", "100"]);
    assert!(dns.iter().any(|l| l.ends_with("dns-request DROPPED (DNS Query example.com. A)")), "{dns:#?}");
    let kafka = observe(&lab, &["--protocol", "kafka", "--verdict", "DROPPED", "--last", "100"]);
    assert!(
        kafka.iter().any(|l| l.contains("kafka-request DROPPED") && l.contains("topic payments")),
        "{kafka:#?}"
    );
    let redis = observe(&lab, &["--protocol", "redis", "--verdict", "DROPPED", "--last", "100"]);
    assert!(
        redis.iter().any(|l| l.contains("-> data/redis:6379") && l.contains("redis-request DROPPED")),
        "{redis:#?}"
    );
}

/// frontend calls backend/echo (grpcio server) over one HTTP/2 connection:
/// Say and Count work, Admin is PERMISSION_DENIED by porin and never
/// reaches the server; grpcurl sees the same.
fn grpc_methods_are_enforced_in_the_lab(lab: &TestLab) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let client = repo.join("tests/support/grpc/client.py");
    // Absolute: frontend's DNS policy refuses the search-list names that
    // resolvers try first, and c-ares and Go stop at a REFUSED.
    let target = "echo.backend.svc.cluster.local.:50051";
    let calls = ["Say", "Admin", "Count:2", "Say"];
    let run = lab.run(
        &[&["run", "-n", "frontend", "grpc", "--", &python(), client.to_str().unwrap(), target], &calls[..]]
            .concat(),
    );
    let report: serde_json::Value =
        serde_json::from_slice(&run.stdout).unwrap_or_else(|err| panic!("{err}: {}", text(&run.stderr)));
    let codes: Vec<&str> =
        report["calls"].as_array().unwrap().iter().map(|c| c["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["OK", "PERMISSION_DENIED", "OK", "OK"], "{report}");
    assert_eq!(report["connections"], 1, "{report}");
    if have("grpcurl") {
        let proto = repo.join("tests/fixtures/grpc");
        let grpcurl = |method: &str| {
            let method = format!("porin.test.Echo/{method}");
            let args = [
                "-plaintext",
                "-import-path",
                proto.to_str().unwrap(),
                "-proto",
                "echo.proto",
                "-d",
                r#"{"text":"hi"}"#,
                target,
                &method,
            ];
            lab.run(&[&["run", "-n", "frontend", "grpcurl", "--", "grpcurl"], &args[..]].concat())
        };
        assert!(grpcurl("Say").status.success());
        let admin = grpcurl("Admin");
        assert_eq!(admin.status.code(), Some(64 + 7), "{}", text(&admin.stderr));
    }
    let served = std::fs::read_to_string(lab.dir().join("pods/backend.echo/calls")).unwrap_or_default();
    assert!(served.contains("/porin.test.Echo/Say") && !served.contains("Admin"), "{served}");
    let denied =
        observe(lab, &["--protocol", "http", "--http-path", "Admin", "--verdict", "DROPPED", "--last", "10"]);
    assert!(
        denied.iter().any(|l| l.contains("-> backend/echo:50051")
            && l.contains("http-request DROPPED (HTTP/2 POST http://echo.backend.svc.cluster.local")
            && l.ends_with(":50051/porin.test.Echo/Admin)")),
        "{denied:#?}"
    );
}
