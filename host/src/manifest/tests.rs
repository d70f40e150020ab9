use super::*;

fn parse(text: &str) -> Manifests {
    let mut manifests = Manifests::default();
    let origin = Location { file: Some(Arc::new(PathBuf::from("in.yaml"))), ..Location::default() };
    manifests.parse(text, origin);
    manifests
}

#[test]
fn multi_document_files_keep_document_index_and_line() {
    let manifests = parse(
        "---\n# comment only\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n\napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n",
    );
    assert!(manifests.diagnostics.is_empty(), "{:?}", manifests.diagnostics);
    let locations: Vec<_> =
        manifests.objects.iter().map(|o| (o.location.document, o.location.line)).collect();
    assert_eq!(locations, [(Some(1), Some(4)), (Some(2), Some(8))]);
    assert_eq!(manifests.objects[1].location.object.as_deref(), Some("Namespace b"));
}

#[test]
fn unknown_kinds_are_skipped_with_a_note() {
    let manifests = parse("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n");
    assert!(manifests.objects.is_empty());
    assert_eq!(manifests.diagnostics[0].severity, crate::diagnostic::Severity::Note);
    assert!(manifests.diagnostics[0].message.contains("v1 ConfigMap"));
}

#[test]
fn errors_name_file_document_object_and_field() {
    let manifests = parse(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p, namespace: n}\nspec:\n  endpointSelector: {}\n  ingress:\n    - toPorts:\n        - ports: [{port: \"80\", prot: TCP}]\n",
    );
    let error = &manifests.diagnostics[0];
    assert_eq!(error.location.field.as_deref(), Some("spec.ingress[0].toPorts[0].ports[0].prot"));
    assert_eq!(
        error.to_string().lines().next().unwrap(),
        "error: in.yaml: document 1 (line 1): CiliumNetworkPolicy n/p: spec.ingress[0].toPorts[0].ports[0].prot: \
         unknown field `prot`, expected one of `port`, `endPort`, `protocol`"
    );
}

#[test]
fn invalid_yaml_reports_the_absolute_line() {
    let manifests =
        parse("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: [oops\n");
    let error = &manifests.diagnostics[0];
    assert_eq!(error.location.document, Some(2));
    assert!(error.message.contains("at line 7 column 1"), "{}", error.message);
    assert!(error.message.contains("flow sequence at line 6 column 7"), "{}", error.message);
    assert_eq!(manifests.objects.len(), 1);
}

#[test]
fn missing_type_meta_and_wrong_api_versions_are_errors() {
    let manifests = parse(
        "metadata: {name: a}\n---\napiVersion: cilium.io/v3\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\n",
    );
    let messages: Vec<_> = manifests.diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        ["missing `apiVersion` or `kind`", "unsupported apiVersion `cilium.io/v3` for CiliumNetworkPolicy"]
    );
}

#[test]
fn lists_are_unpacked_and_status_of_policies_is_ignored() {
    let manifests = parse(
        "apiVersion: v1\nkind: List\nitems:\n  - apiVersion: cilium.io/v2\n    kind: CiliumNetworkPolicy\n    metadata: {name: p}\n    spec: {endpointSelector: {}}\n    status: {conditions: []}\n",
    );
    assert!(manifests.diagnostics.is_empty(), "{:?}", manifests.diagnostics);
    assert!(matches!(manifests.objects[0].body, Body::CiliumNetworkPolicy(_)));
}

#[test]
fn directories_load_manifest_files_in_name_order() {
    let dir = std::env::temp_dir().join(format!("porin-manifest-test-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("b.yaml"), "apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n").unwrap();
    std::fs::write(dir.join("sub/a.yml"), "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n").unwrap();
    std::fs::write(dir.join("notes.txt"), "not yaml").unwrap();
    let manifests = Manifests::load(&[&dir, &dir.join("missing.yaml")]);
    std::fs::remove_dir_all(&dir).unwrap();
    let names: Vec<_> = manifests.objects.iter().filter_map(|o| o.location.object.clone()).collect();
    assert_eq!(names, ["Namespace b", "Namespace a"]);
    assert!(manifests.diagnostics[0].message.starts_with("cannot read file"));
}
