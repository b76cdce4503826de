//! Compiles `proto/` into `OUT_DIR` with protox, so no system `protoc` is
//! needed, and writes the file descriptor set for reflection and JSON.
use std::path::PathBuf;

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        root.join("tiering/events/v1/events.proto"),
        root.join("tiering/v1/tier_service.proto"),
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let fds = protox::compile(&files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("tiering_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        // Prost's codec, with a message that does not decode the sender's
        // error (INVALID_ARGUMENT), not the server's (INTERNAL).
        .codec_path("crate::codec::SenderCodec")
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
