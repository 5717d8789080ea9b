//! `jobctl serve`: starts the web dashboard (`crate::ui`) on the config's database and blob_dir.

use std::net::SocketAddr;
use std::sync::Arc;

use super::Error;
use crate::config::Config;
use crate::store::Store;
use crate::ui;

pub fn run(
    config: &Config,
    store: Arc<dyn Store>,
    listen: Option<SocketAddr>,
) -> Result<(), Error> {
    let listen = listen.unwrap_or(config.ui.listen);
    let server = ui::Server::bind(config, store, listen).map_err(|e| match e {
        ui::Error::NeedsToken(_) => Error::BadInput(e.to_string()),
        ui::Error::Listen(..) => Error::Failed(e.to_string()),
    })?;
    let bound = server.local_addr().unwrap_or(listen);
    // Tests and scripts read this line for the port when --listen asked for port 0.
    println!("dashboard on http://{bound}/ (Ctrl-C stops it)");
    server.run();
    Ok(())
}
