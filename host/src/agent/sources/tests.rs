use std::path::{Path, PathBuf};

use super::{Sources, Stamp};
use crate::manifest::Body;
use crate::reading::Reading;

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("porin-sources-{name}-{}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.0.join(name), text).unwrap();
    }

    fn remove(&self, name: &str) {
        std::fs::remove_file(self.0.join(name)).unwrap();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

fn policy(name: &str, app: &str) -> String {
    format!(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: {name}, namespace: app}}\n\
         spec:\n  endpointSelector: {{matchLabels: {{app: {app}}}}}\n  ingress: [{{}}]\n"
    )
}

/// The sources with the reading in force, as the agent keeps them.
struct Tracked {
    sources: Sources,
    in_force: Reading,
}

impl Tracked {
    fn new(paths: Vec<PathBuf>) -> Tracked {
        Tracked { sources: Sources::new(paths), in_force: Reading::default() }
    }

    fn paths(&self) -> &[PathBuf] {
        self.sources.paths()
    }
}

/// `name=app` (the app it selects) of each policy in force.
fn policies(sources: &Tracked) -> Vec<String> {
    let reading = sources.sources.read(&sources.in_force);
    reading
        .manifests()
        .objects
        .iter()
        .filter_map(|object| match &object.body {
            Body::CiliumNetworkPolicy(p) => {
                let selector = p.spec.as_ref()?.endpoint_selector.as_ref()?;
                Some(format!("{}={}", p.metadata.name, selector.match_labels["app"]))
            }
            _ => None,
        })
        .collect()
}

/// Reads, and commits as the agent does after a successful apply.
fn apply(sources: &mut Tracked) -> (bool, Vec<String>) {
    let reading = sources.sources.read(&sources.in_force);
    let changed = reading.differs_from(&sources.in_force);
    let rejections = reading.rejections().map(ToString::to_string).collect();
    sources.in_force = reading;
    (changed, rejections)
}

fn sources_of(dir: &Path) -> Tracked {
    Tracked::new(vec![dir.to_path_buf()])
}

#[test]
fn a_broken_edit_keeps_the_files_last_good_version_until_it_is_fixed() {
    let dir = Scratch::new("edit");
    let mut sources = sources_of(&dir.0);
    dir.write("api.yaml", &policy("api", "api"));
    dir.write("web.yaml", &policy("web", "web"));
    assert_eq!(apply(&mut sources), (true, vec![]));
    assert_eq!(policies(&sources), ["api=api", "web=web"]);

    // Broken YAML in api.yaml, and a good change to web.yaml at the same time.
    dir.write("api.yaml", "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: api\n");
    dir.write("web.yaml", &policy("web", "web2"));
    let (changed, rejections) = apply(&mut sources);
    assert!(changed);
    assert_eq!(rejections.len(), 1, "{rejections:?}");
    assert!(rejections[0].starts_with("error: ") && rejections[0].contains("api.yaml"), "{rejections:?}");
    assert!(rejections[0].contains("line"), "the error says where: {rejections:?}");
    assert_eq!(policies(&sources), ["api=api", "web=web2"], "api stays, web's change applies");

    // Reading again without a change reports the same problem, and no change.
    let (changed, rejections) = apply(&mut sources);
    assert!(!changed);
    assert_eq!(rejections.len(), 1);

    // Fixed: the new version applies.
    dir.write("api.yaml", &policy("api", "api2"));
    assert_eq!(apply(&mut sources), (true, vec![]));
    assert_eq!(policies(&sources), ["api=api2", "web=web2"]);

    // Removed: its objects are deleted.
    dir.remove("api.yaml");
    assert_eq!(apply(&mut sources), (true, vec![]));
    assert_eq!(policies(&sources), ["web=web2"]);
}

#[test]
fn a_policy_failing_validation_holds_back_its_whole_file() {
    let dir = Scratch::new("validation");
    let mut sources = sources_of(&dir.0);
    let two = format!("{}---\n{}", policy("a", "a"), policy("b", "b"));
    dir.write("both.yaml", &two);
    apply(&mut sources);

    // `b` loses its endpointSelector: translation rejects it, and `a`'s
    // change in the same file waits with it.
    let no_selector = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: b, namespace: app}\n\
                       spec:\n  ingress: [{}]\n";
    dir.write("both.yaml", &format!("{}---\n{no_selector}", policy("a", "a2")));
    let (_, rejections) = apply(&mut sources);
    assert_eq!(rejections.len(), 1, "{rejections:?}");
    assert!(
        rejections[0].contains("both.yaml: document 2 (line 8): CiliumNetworkPolicy app/b"),
        "{rejections:?}"
    );
    assert!(rejections[0].contains("endpointSelector"), "{rejections:?}");
    assert_eq!(policies(&sources), ["a=a", "b=b"]);
}

#[test]
fn a_file_that_never_parsed_contributes_nothing() {
    let dir = Scratch::new("never");
    let mut sources = sources_of(&dir.0);
    dir.write("good.yaml", &policy("good", "good"));
    dir.write("bad.yaml", "kind: [");
    let (_, rejections) = apply(&mut sources);
    assert!(rejections.len() == 1 && rejections[0].contains("bad.yaml"), "{rejections:?}");
    assert_eq!(policies(&sources), ["good=good"]);
}

#[test]
fn a_named_path_that_disappears_is_an_error_and_what_it_held_stays() {
    let dir = Scratch::new("named");
    let mut sources = Tracked::new(vec![dir.0.join("policy.yaml")]);
    dir.write("policy.yaml", &policy("p", "p"));
    apply(&mut sources);
    dir.remove("policy.yaml");
    let (changed, rejections) = apply(&mut sources);
    assert!(changed);
    assert!(rejections.len() == 1 && rejections[0].contains("cannot read"), "{rejections:?}");
    assert_eq!(policies(&sources), ["p=p"]);
}

#[test]
fn rewriting_the_same_content_is_no_change() {
    let dir = Scratch::new("same");
    let mut sources = sources_of(&dir.0);
    dir.write("p.yaml", &policy("p", "p"));
    apply(&mut sources);
    let before = Stamp::of(sources.paths());
    std::thread::sleep(std::time::Duration::from_millis(10));
    dir.write("p.yaml.tmp", &policy("p", "p"));
    std::fs::rename(dir.0.join("p.yaml.tmp"), dir.0.join("p.yaml")).unwrap();
    assert_ne!(Stamp::of(sources.paths()), before, "a rename over the file changes the stamp");
    assert_eq!(apply(&mut sources), (false, vec![]));
}

#[test]
fn hidden_files_and_other_extensions_are_not_sources() {
    let dir = Scratch::new("hidden");
    let sources = sources_of(&dir.0);
    std::fs::create_dir_all(dir.0.join("..data")).unwrap();
    dir.write("..data/p.yaml", &policy("mounted", "x"));
    dir.write(".#p.yaml", &policy("lock", "x"));
    dir.write("p.yaml~", &policy("backup", "x"));
    dir.write("p.yaml", &policy("p", "p"));
    assert_eq!(policies(&sources), ["p=p"]);
}
