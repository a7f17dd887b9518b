//! `covey completion bash|zsh|fish`: a completion script for the shell, made from the
//! command line's own definition, so it never drifts from the flags covey takes.

use std::io::Write as _;

use clap::{Args, CommandFactory, ValueEnum};

#[derive(Args)]
pub struct CompletionArgs {
    shell: Shell,
}

/// The shells a board's owner is likely to use; clap_complete knows more, but each is a
/// promise to keep working.
#[derive(Clone, Copy, ValueEnum)]
enum Shell {
    Bash,
    Zsh,
    Fish,
}

pub fn run(args: &CompletionArgs) -> std::io::Result<()> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    // Made in memory and written here: clap_complete panics on a failed write, and a
    // script piped into `head` is no reason to abort.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command(), "covey", &mut script);
    match std::io::stdout().write_all(&script) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// The command line without its hidden commands, which bash's script would otherwise
/// offer (the runtime helper is the daemon's, not a user's).
fn command() -> clap::Command {
    let full = super::Cli::command();
    clap::Command::new("covey")
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|c| !c.is_hide_set()).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_name_the_commands() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut command(), "covey", &mut out);
            let text = String::from_utf8(out).expect("utf-8");
            for word in ["service", "swarm", "--replicas"] {
                assert!(text.contains(word), "{shell:?} lacks {word}");
            }
            // The hidden helper is no user's command.
            assert!(!text.contains("runtime-helper"), "{shell:?}");
        }
    }
}
