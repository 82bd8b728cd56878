//! `cargo run -p example-embed-core`: see the library documentation.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let finished = example_embed_core::run(example_embed_core::Options::default()).await?;
    println!("finished in phase {:?}", finished.phase);
    Ok(())
}
