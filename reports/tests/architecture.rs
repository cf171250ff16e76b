//! Repository rules that ARCHITECTURE.md states about this package, checked.

#[test]
fn architecture_md_is_short_and_states_the_dependency_direction_the_manifests_have() {
    let text = std::fs::read_to_string("../ARCHITECTURE.md").expect("ARCHITECTURE.md at the root");
    let lines = text.lines().count();
    assert!(lines <= 150, "ARCHITECTURE.md has {lines} lines; at most 150");
    // Short by saying less, not by joining lines: prose wraps at 100 columns (code blocks aside).
    let mut in_code = false;
    for (n, line) in text.lines().enumerate() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        let width = line.chars().count();
        assert!(in_code || width <= 100, "ARCHITECTURE.md line {} has {width} columns; at most 100", n + 1);
    }
    let rule = "engine <- sim <- reports <- cli";
    assert!(text.contains(rule), "ARCHITECTURE.md lacks {rule:?}");
    let dependencies = |manifest: &str| -> Vec<String> {
        let text = std::fs::read_to_string(manifest).expect("a manifest");
        let section = text.split("[dependencies]").nth(1).expect("a [dependencies] section");
        let section = section.split("\n[").next().unwrap_or("");
        section
            .lines()
            .filter_map(|l| l.split(['.', ' ', '=']).next())
            .filter(|n| n.starts_with("swarmalloc"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(dependencies("Cargo.toml"), ["swarmalloc", "swarmalloc-sim"], "reports reads what sim writes");
    assert_eq!(dependencies("../sim/Cargo.toml"), ["swarmalloc"], "sim does not depend on reports");
}
