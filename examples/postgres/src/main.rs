//! `cargo run -p example-postgres -- [URL] [SCHEMA]`: see the library documentation.

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let schema = args.next().unwrap_or_else(|| "phoenix_example".to_owned());
    let finished =
        example_postgres::run(&url, &schema, example_postgres::Options::default()).await?;
    println!("finished in phase {:?}", finished.phase);
    Ok(())
}
