//! The compatibility matrix in docs/plugins.md names every registered plugin.

#[test]
fn every_registered_plugin_has_a_matrix_row() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/plugins.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let mut missing = Vec::new();
    for (kind, name) in ferrentd::plugins::registered_names() {
        let found = doc.lines().any(|l| {
            let mut cells = l.split('|').map(str::trim);
            let _ = cells.next();
            let first = cells.next().unwrap_or("");
            let second = cells.next().unwrap_or("");
            second == kind
                && (first == name
                    || first.starts_with(&format!("{name} "))
                    || first.contains(&format!("alias {name})")))
        });
        if !found {
            missing.push(format!("{kind} {name}"));
        }
    }
    assert!(missing.is_empty(), "no matrix row for: {missing:?}");
}
