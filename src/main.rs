//! The `wxretain` binary: everything lives in the library, so the tests drive
//! the same code.

fn main() -> std::process::ExitCode {
    wxretain::cli::main()
}
