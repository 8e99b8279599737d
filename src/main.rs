//! `tensorcity`: parse the command line and run it; errors become one line on
//! stderr and a non-zero exit code. In the browser: the viewer in the page.

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    use clap::Parser;
    let cli = tensorcity::cli::Cli::parse();
    match tensorcity::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(target_arch = "wasm32")]
fn main() {
    tensorcity::web::run();
}
