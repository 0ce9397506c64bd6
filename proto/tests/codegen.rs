//! The committed generated code must match what `cri/api.proto` produces.

#[path = "../src/codegen.rs"]
mod codegen;

#[test]
fn generated_code_is_fresh() {
    let fresh = codegen::generate().unwrap_or_else(|e| panic!("generating CRI code failed: {e}"));
    let path = codegen::committed_path();
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    if fresh == committed {
        return;
    }
    let (line, want, have) = fresh
        .lines()
        .zip(committed.lines())
        .enumerate()
        .find(|(_, (f, c))| f != c)
        .map_or_else(
            || {
                let n = fresh.lines().count().min(committed.lines().count());
                (
                    n,
                    "<end of file or more lines>",
                    "<end of file or more lines>",
                )
            },
            |(i, (f, c))| (i, f, c),
        );
    panic!(
        "{} is stale (first difference at line {}):\n  generated: {want}\n  committed: {have}\n\
         Regenerate it with:\n  {}",
        path.display(),
        line + 1,
        codegen::REGENERATE,
    );
}
