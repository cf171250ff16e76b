//! `allocsim`: the simulator's command line (see `swarmalloc_sim::cli`).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(swarmalloc_sim::cli::main(args));
}
