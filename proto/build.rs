//! Generates the stampede.v1 code. A vendored protoc is used unless `PROTOC`
//! names one, so a machine with only the Rust toolchain builds the workspace.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = match std::env::var_os("PROTOC") {
        Some(path) => std::path::PathBuf::from(path),
        None => protoc_bin_vendored::protoc_bin_path()?,
    };
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    println!("cargo:rerun-if-changed=proto/stampede.proto");
    tonic_prost_build::configure().compile_with_config(config, &["proto/stampede.proto"], &["proto"])?;
    Ok(())
}
