//! The harness itself on a real swarm: start, crash, restart, stop, and nothing left behind,
//! also when the test using it panics.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use swarmalloc_live::harness::{IMAGE, SwarmOptions, swarm_for_test};
use swarmalloc_live::ops::specs::attachable;
use swarmalloc_live::ops::{Op, apply};

/// Processes whose command line names `dir` (the harness's dockerd, containerd and shims).
fn processes_naming(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(dir.to_str().unwrap()) {
                out.push(cmdline);
            }
        }
    }
    out
}

fn assert_nothing_left(dir: &Path) {
    assert!(!dir.exists(), "{} was removed", dir.display());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(dir.to_str().unwrap()), "no mount left under {}", dir.display());
    assert_eq!(processes_naming(dir), Vec::<String>::new(), "no process left");
}

#[test]
fn a_crashed_manager_restarts_with_its_store_and_nothing_is_left_behind() {
    let Some(mut swarm) = swarm_for_test("harness crash/restart", &SwarmOptions::default()) else { return };
    let dir = swarm.dir().to_path_buf();
    let image = swarm.block_on(swarm.docker().inspect_image(IMAGE)).expect("the image was imported");
    assert!(image.id.is_some());
    let id =
        |swarm: &swarmalloc_live::harness::Swarm| swarm.block_on(swarm.docker().inspect_swarm()).expect("swarm").id;
    let before = id(&swarm);
    // A running container: its shim outlives a crash of dockerd and containerd.
    swarm.block_on(apply(swarm.docker(), &Op::CreateNetwork(attachable("att")))).unwrap();
    let run = Op::RunContainer { name: "c1".into(), network: "att".into(), address: None };
    swarm.block_on(apply(swarm.docker(), &run)).unwrap();
    swarm.crash_restart().expect("crash and restart");
    assert_eq!(id(&swarm), before, "the restarted manager is the same swarm");
    swarm.restart().expect("graceful restart");
    assert_eq!(id(&swarm), before);
    swarm
        .block_on(apply(swarm.docker(), &Op::RunContainer { name: "c2".into(), network: "att".into(), address: None }))
        .unwrap();
    swarm.crash().expect("crash");
    assert!(!processes_naming(&dir).is_empty(), "the container's shim outlived the crash");
    drop(swarm);
    assert_nothing_left(&dir);
}

#[test]
fn a_panicking_test_leaves_nothing_behind_and_the_next_one_gets_the_swarm() {
    let seen: Mutex<Option<PathBuf>> = Mutex::new(None);
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let Some(swarm) = swarm_for_test("harness cleanup on panic", &SwarmOptions::default()) else { return };
        *seen.lock().unwrap() = Some(swarm.dir().to_path_buf());
        swarm.block_on(apply(swarm.docker(), &Op::CreateNetwork(attachable("att")))).unwrap();
        let run = Op::RunContainer { name: "c1".into(), network: "att".into(), address: None };
        swarm.block_on(apply(swarm.docker(), &run)).unwrap();
        panic!("a test fails while its swarm runs a container");
    }));
    let Some(dir) = seen.into_inner().unwrap() else { return };
    assert!(result.is_err());
    assert_nothing_left(&dir);
    let next = swarm_for_test("harness after a panic", &SwarmOptions::default()).expect("the lock was released");
    assert!(next.dockerd_pid().is_some());
}
