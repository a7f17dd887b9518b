//! The `covey` binary: the daemon and its CLI. All the work is in the library.

fn main() -> std::process::ExitCode {
    covey::cli::main()
}
