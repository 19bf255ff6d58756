//! Compiles proto/kubearmor.proto with protox (no protoc) into the tonic client and server
//! (the server is what the tests' fake relay is built from).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=proto/kubearmor.proto");
    let fds = match protox::compile(["kubearmor.proto"], ["proto"]) {
        Ok(fds) => fds,
        Err(e) => {
            eprintln!("proto/kubearmor.proto: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)
    {
        eprintln!("generating the KubeArmor gRPC code: {e}");
        std::process::exit(1);
    }
}
