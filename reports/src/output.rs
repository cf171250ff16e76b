//! Writes a report's files into its output directory without losing what was there, and without
//! leaving files of an earlier report behind. Everything is first written into a temporary
//! directory inside it (tempfile; a directory the report owns, such as `charts/`, is written
//! whole); only when all of it is written are the entries renamed into place, in order. A failure at any point removes the temporaries and puts back what was replaced, so a
//! failed run changes nothing and a reader never sees half a file. Nothing is written before
//! every input was read.

use std::path::{Path, PathBuf};

use crate::error::InputError;

/// What a report writes into its directory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// Subdirectories the report owns (for example `charts`): each is replaced whole, so a file
    /// an earlier report wrote there and this one does not is gone.
    pub dirs: Vec<String>,
    /// Paths relative to the directory, and contents, in the order they are put in place. A path
    /// with a directory part is inside one of `dirs` (or its first component is taken as one).
    pub files: Vec<(String, String)>,
}

/// One name in the output directory, written under `staged` and then renamed to `path`.
struct Entry {
    staged: PathBuf,
    path: PathBuf,
    is_dir: bool,
}

/// Writes `output` into `dir`, all or nothing; returns the paths of the files written.
pub fn write_files(dir: &Path, output: &Output) -> Result<Vec<PathBuf>, InputError> {
    std::fs::create_dir_all(dir).map_err(|e| InputError::Write {
        file: dir.to_path_buf(),
        message: format!("cannot create the output directory: {e}"),
    })?;
    // Both are inside `dir`, so that every rename stays on one file system; tempfile names them
    // so that concurrent writes into one directory do not collide, and removes them (with
    // whatever is left in them) when dropped.
    let temporary =
        |prefix: &str| tempfile::Builder::new().prefix(prefix).tempdir_in(dir).map_err(|e| cannot_write(dir, e));
    let staging = temporary(".staging-")?;
    let (written, entries) = stage(dir, staging.path(), output)?;
    let replaced = temporary(".replaced-")?;
    commit(&entries, replaced.path())?;
    Ok(written)
}

fn cannot_write(path: &Path, e: std::io::Error) -> InputError {
    InputError::Write { file: path.to_path_buf(), message: e.to_string() }
}

fn remove(path: &Path, is_dir: bool) -> std::io::Result<()> {
    if is_dir { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) }
}

/// Writes every file under `staging`; the entries are the top-level names to put in place.
fn stage(dir: &Path, staging: &Path, output: &Output) -> Result<(Vec<PathBuf>, Vec<Entry>), InputError> {
    let mut written = Vec::new();
    let mut entries: Vec<Entry> = Vec::new();
    let nested = output.files.iter().filter_map(|(name, _)| name.split_once('/').map(|(top, _)| top));
    for name in output.dirs.iter().map(String::as_str).chain(nested) {
        if entries.iter().any(|e| e.path == dir.join(name)) {
            continue;
        }
        let staged = staging.join(name);
        std::fs::create_dir(&staged).map_err(|e| cannot_write(&dir.join(name), e))?;
        entries.push(Entry { staged, path: dir.join(name), is_dir: true });
    }
    for (name, contents) in &output.files {
        let path = dir.join(name);
        let staged = staging.join(name);
        if let Some(parent) = staged.parent() {
            std::fs::create_dir_all(parent).map_err(|e| cannot_write(&path, e))?;
        }
        if !name.contains('/') {
            entries.push(Entry { staged: staged.clone(), path: path.clone(), is_dir: false });
        }
        std::fs::write(&staged, contents).map_err(|e| cannot_write(&path, e))?;
        written.push(path);
    }
    Ok((written, entries))
}

/// Renames every staged entry into place, keeping what it replaces in `replaced` until all are
/// in place; on a failure, puts every replaced entry back.
fn commit(entries: &[Entry], replaced: &Path) -> Result<(), InputError> {
    let mut done: Vec<(&Entry, Option<PathBuf>)> = Vec::new();
    let mut result = Ok(());
    for entry in entries {
        match replace(entry, replaced) {
            Ok(backup) => done.push((entry, backup)),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if result.is_err() {
        for (entry, backup) in done.iter().rev() {
            match backup {
                Some(backup) => {
                    if entry.is_dir {
                        let _ = std::fs::remove_dir_all(&entry.path);
                    }
                    let _ = std::fs::rename(backup, &entry.path);
                }
                None => {
                    let _ = remove(&entry.path, entry.is_dir);
                }
            }
        }
    }
    result
}

/// Puts one staged entry in place; returns where the entry it replaced was kept. A file is
/// replaced by one rename (its old version kept as a hard link), a directory by moving the old
/// one aside first.
fn replace(entry: &Entry, replaced: &Path) -> Result<Option<PathBuf>, InputError> {
    let name = entry.path.file_name().unwrap_or_default();
    let backup = replaced.join(name);
    let exists = std::fs::symlink_metadata(&entry.path).is_ok();
    if exists {
        let kept =
            if entry.is_dir { std::fs::rename(&entry.path, &backup) } else { std::fs::hard_link(&entry.path, &backup) };
        kept.map_err(|e| cannot_write(&entry.path, e))?;
    }
    let backup = exists.then_some(backup);
    if let Err(e) = std::fs::rename(&entry.staged, &entry.path) {
        if let Some(backup) = &backup {
            if entry.is_dir {
                let _ = std::fs::rename(backup, &entry.path);
            } else {
                let _ = std::fs::remove_file(backup);
            }
        }
        return Err(cannot_write(&entry.path, e));
    }
    Ok(backup)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("swarmalloc-output-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn output(files: &[(&str, &str)]) -> Output {
        Output {
            dirs: vec!["charts".into()],
            files: files.iter().map(|(name, text)| (name.to_string(), text.to_string())).collect(),
        }
    }

    /// Every file under `dir` with its contents, by path.
    fn tree(dir: &Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(at) = stack.pop() {
            for entry in std::fs::read_dir(&at).expect("listable") {
                let path = entry.expect("entry").path();
                let name = path.strip_prefix(dir).expect("inside").display().to_string();
                if path.is_dir() {
                    out.push((format!("{name}/"), String::new()));
                    stack.push(path);
                } else {
                    out.push((name, std::fs::read_to_string(&path).expect("readable")));
                }
            }
        }
        out.sort();
        out
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn a_new_report_replaces_files_and_leaves_nothing_stale() {
        let dir = temp_dir("replace");
        write_files(&dir, &output(&[("charts/a.svg", "a"), ("charts/sub/c.svg", "c"), ("a.json", "old")]))
            .expect("writable");
        let written = write_files(&dir, &output(&[("charts/b.svg", "b"), ("a.json", "new")])).expect("writable");
        assert_eq!(written, [dir.join("charts/b.svg"), dir.join("a.json")]);
        assert_eq!(tree(&dir), pairs(&[("a.json", "new"), ("charts/", ""), ("charts/b.svg", "b")]));
        write_files(&dir, &output(&[("a.json", "newer")])).expect("writable");
        assert_eq!(tree(&dir), pairs(&[("a.json", "newer"), ("charts/", "")]), "an owned directory is emptied");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_failed_write_changes_nothing() {
        let dir = temp_dir("failed");
        let before = [("charts/a.svg", "a"), ("a.json", "old"), ("index.html", "page")];
        write_files(&dir, &output(&before)).expect("writable");
        let unwritable = output(&[("charts/b.svg", "b"), ("charts/bad\0.svg", "x"), ("a.json", "new")]);
        let error = write_files(&dir, &unwritable).expect_err("a NUL byte in a file name");
        assert!(error.to_string().starts_with(&dir.join("charts/bad\0.svg").display().to_string()), "{error}");
        assert_eq!(
            tree(&dir),
            pairs(&[("a.json", "old"), ("charts/", ""), ("charts/a.svg", "a"), ("index.html", "page")])
        );
        // A failure while renaming into place (index.html has become a directory) puts back the
        // charts and a.json that were already replaced.
        std::fs::remove_file(dir.join("index.html")).expect("removable");
        std::fs::create_dir_all(dir.join("index.html/x")).expect("a directory in the way");
        let error = write_files(&dir, &output(&[("charts/b.svg", "b"), ("a.json", "new"), ("index.html", "new")]))
            .expect_err("index.html is a directory");
        assert!(
            error.to_string().starts_with(&format!("{}: cannot write: ", dir.join("index.html").display())),
            "{error}"
        );
        let after =
            [("a.json", "old"), ("charts/", ""), ("charts/a.svg", "a"), ("index.html/", ""), ("index.html/x/", "")];
        assert_eq!(tree(&dir), pairs(&after));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unwritable_directory_names_the_path() {
        let file = std::env::temp_dir().join(format!("swarmalloc-output-file-{}", std::process::id()));
        std::fs::write(&file, "x").expect("writable temp");
        let error = write_files(&file, &output(&[("a.json", "x")])).expect_err("a file is no directory");
        let expected = format!("{}: cannot write: cannot create the output directory: ", file.display());
        assert!(error.to_string().starts_with(&expected), "{error}");
        let _ = std::fs::remove_file(&file);
    }
}
