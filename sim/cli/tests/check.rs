//! `allocsim check` as a user runs it: the verdict on the terminal, files only when asked
//! (`--out`), a saved dump or a live swarm (`--host`, `DOCKER_HOST`), and one short error with
//! exit 2 when the swarm cannot be read or the options do not go together. The gather of a live
//! swarm itself is tested in swarmalloc-live (against a served real gather) and on a real swarm
//! by reports/tests/dumps/real/make.sh, which runs `allocsim check --save-dump` for every fixture.

mod common;

use std::process::Command;

use common::TempDir;

fn check(args: &[&str], docker_host: Option<&str>) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_allocsim"));
    command.arg("check").args(args);
    match docker_host {
        Some(host) => command.env("DOCKER_HOST", host),
        None => command.env_remove("DOCKER_HOST"),
    };
    let out = command.output().expect("run allocsim");
    (out.status.code().unwrap_or(-1), common::utf8(&out.stdout), common::utf8(&out.stderr))
}

fn dump(name: &str) -> String {
    common::repo().join("reports/tests/dumps").join(name).display().to_string()
}

#[test]
fn the_verdict_goes_to_the_terminal_and_files_only_where_asked() {
    let dir = TempDir::new("check-verdict");
    let (code, stdout, stderr) = check(&[&dump("real/default_pools")], None);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.ends_with("CLEAN: no problems\n"), "{stdout}");
    assert!(!stdout.contains("wrote"), "{stdout}");
    let (code, stdout, _) = check(&[&dump("real/b4_leak")], None);
    assert_eq!(code, 1);
    assert!(stdout.ends_with("PROBLEMS: 3 found (3 task_stuck_in_new)\n"), "{stdout}");
    assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 0, "nothing written without --out");

    let out = dir.path("out");
    let (code, stdout, _) = check(&[&dump("real/b4_leak"), "--out", out.to_str().unwrap()], None);
    assert_eq!(code, 1);
    assert!(stdout.ends_with(&format!("wrote {}\n", out.join("index.html").display())), "{stdout}");
    assert!(out.join("check.json").is_file() && out.join("index.html").is_file());
}

#[test]
fn without_a_state_the_live_swarm_of_host_or_docker_host_is_read() {
    let dir = TempDir::new("check-live");
    let socket = dir.path("docker.sock");
    let host = format!("unix://{}", socket.display());
    let (code, stdout, stderr) = check(&["--host", &host], Some("unix:///elsewhere.sock"));
    assert_eq!(code, 2, "{stdout}");
    assert!(stderr.starts_with(&format!("allocsim: {host}: connect: ")), "--host wins: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let (code, _, stderr) = check(&[], Some(&host));
    assert_eq!(code, 2);
    assert!(stderr.starts_with(&format!("allocsim: {host}: connect: ")), "DOCKER_HOST: {stderr}");
    let saved = dir.path("saved");
    let (code, _, stderr) = check(&["-H", &host, "--save-dump", saved.to_str().unwrap()], None);
    assert_eq!(code, 2, "{stderr}");
    assert!(!saved.exists(), "nothing saved from a swarm that was not read");
    let (code, _, stderr) = check(&["--host", "tcp://10.0.0.1:2375"], None);
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        "allocsim: --host is \"tcp://10.0.0.1:2375\": expected unix:///path/to/docker.sock (only unix sockets are \
         supported)\n"
    );
}

#[test]
fn a_saved_state_goes_with_neither_host_nor_save_dump() {
    for extra in [["--host", "unix:///x.sock"], ["--save-dump", "/tmp/x"]] {
        let mut args = vec![dump("clean")];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stdout, stderr) = check(&args, None);
        assert_eq!(code, 2, "{stdout}");
        assert!(stderr.contains("the argument '[STATE]' cannot be used with"), "{stderr}");
        assert!(stderr.contains("allocsim check --help"), "{stderr}");
    }
}
