use std::process::ExitCode;

use clap::Parser;
use porin::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.run(&mut std::io::stdout().lock(), &mut std::io::stderr().lock()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
