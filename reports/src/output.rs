//! Writes a report's files into its output directory without losing what was there: each file
//! goes to a temporary name in the same directory and is renamed over the old one, so a reader
//! (or a failed run) never sees half a file. Nothing is written before every input was read.

use std::path::{Path, PathBuf};

use crate::error::InputError;

/// Writes `files` (paths relative to `dir`, contents) in order, each atomically.
pub fn write_files(dir: &Path, files: &[(String, String)]) -> Result<Vec<PathBuf>, InputError> {
    let mut written = Vec::new();
    for (name, contents) in files {
        let path = dir.join(name);
        let parent = path.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent).map_err(|e| InputError::Write {
            file: parent.to_path_buf(),
            message: format!("cannot create the output directory: {e}"),
        })?;
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let temporary = parent.join(format!(".{file_name}.tmp-{}", std::process::id()));
        let io = |e: std::io::Error| InputError::Write { file: path.clone(), message: e.to_string() };
        std::fs::write(&temporary, contents).map_err(io)?;
        if let Err(e) = std::fs::rename(&temporary, &path) {
            let _ = std::fs::remove_file(&temporary);
            return Err(io(e));
        }
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_replace_old_ones_and_leave_no_temporary() {
        let dir = std::env::temp_dir().join(format!("swarmalloc-output-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        write_files(&dir, &[("a.json".into(), "old".into())]).expect("writable");
        let written = write_files(&dir, &[("a.json".into(), "new".into()), ("charts/b.svg".into(), "<svg/>".into())])
            .expect("writable");
        assert_eq!(written, [dir.join("a.json"), dir.join("charts/b.svg")]);
        assert_eq!(std::fs::read_to_string(dir.join("a.json")).expect("written"), "new");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .expect("listable")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["a.json", "charts"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_unwritable_directory_names_the_path() {
        let file = std::env::temp_dir().join(format!("swarmalloc-output-file-{}", std::process::id()));
        std::fs::write(&file, "x").expect("writable temp");
        let error = write_files(&file, &[("a.json".into(), "x".into())]).expect_err("a file is no directory");
        let expected = format!("{}: cannot write: cannot create the output directory: ", file.display());
        assert!(error.to_string().starts_with(&expected), "{error}");
        let _ = std::fs::remove_file(&file);
    }
}
