//! `allocsim live`: a thin wrapper over `swarmalloc_live::live`.

use std::time::Duration;

use swarmalloc_live::Endpoint;
use swarmalloc_live::harness::SwarmOptions;
use swarmalloc_live::live::{LiveOptions, Where, run_live};
use swarmalloc_sim::scenario_file;

use crate::args::LiveArgs;
use crate::{Error, Outcome};

pub fn live(args: &LiveArgs) -> Outcome {
    let target = if args.host.is_some() || args.docker_host {
        let docker_host = std::env::var("DOCKER_HOST").ok();
        let endpoint = Endpoint::resolve(args.host.as_deref(), docker_host.as_deref()).map_err(|e| e.to_string())?;
        Where::Existing(endpoint)
    } else {
        Where::Own(SwarmOptions::default())
    };
    let mut scenarios = Vec::new();
    for name in &args.scenarios {
        scenarios.extend(scenario_file::resolve(name).map_err(|e| e.to_string())?);
    }
    let options =
        LiveOptions { seed: args.seed, target, run_tasks: args.run_tasks, settle: Duration::from_secs(args.settle) };
    let mut code = 0;
    for scenario in &scenarios {
        let run = run_live(scenario, &options).map_err(|e| Error::Input(format!("{} [real]: {e}", scenario.name)))?;
        if args.json {
            println!("{}", serde_json::to_string(&run.result).expect("a result line serialises"));
            println!("{}", serde_json::to_string(&run.summary).expect("a summary line serialises"));
        } else {
            print!("{}", run.to_text());
        }
        if run.result.violation.is_some() {
            code = 1;
        }
    }
    Ok(code)
}
