//! `cargo run -p example-custom-pricing`: see the library documentation.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    example_custom_pricing::run(example_embed_core::Options::default()).await?;
    Ok(())
}
