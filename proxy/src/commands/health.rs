//! `certfront health`: one GET to the admin listener's `/healthz` (or `/readyz`), for
//! container and service-manager health checks that have no curl or shell to run.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::ConfigArg;
use super::print_config_error;

/// `certfront health`.
#[derive(Debug, clap::Args)]
pub(crate) struct HealthArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// The admin listener to ask (IP:PORT); default: server.admin of the configuration.
    #[arg(long, value_name = "IP:PORT")]
    pub admin: Option<SocketAddr>,
    /// Ask /readyz (listeners bound, every host has a certificate, not draining) instead of /healthz.
    #[arg(long)]
    pub ready: bool,
    /// Give up after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub timeout: u64,
}

/// Exit 0 when the endpoint answers 200, 1 on anything else (printed).
pub(crate) fn health(args: &HealthArgs) -> ExitCode {
    let admin = match args.admin {
        Some(addr) => addr,
        None => match certfront_config::load(&args.config.config) {
            Ok(config) => match config.server.admin {
                Some(addr) => addr,
                None => {
                    eprintln!(
                        "error: {}: server.admin is not set, so there is nothing to ask; \
                         set it (e.g. admin = \"127.0.0.1:9443\") or pass --admin IP:PORT",
                        config.source.display()
                    );
                    return ExitCode::from(1);
                }
            },
            Err(e) => {
                print_config_error(&e);
                return ExitCode::from(1);
            }
        },
    };
    let target = reachable(admin);
    let path = if args.ready { "/readyz" } else { "/healthz" };
    let url = format!("http://{target}{path}");
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let limit = Duration::from_secs(args.timeout.max(1));
    match runtime.block_on(async { tokio::time::timeout(limit, get(target, path)).await }) {
        Ok(Ok(StatusCode::OK)) => {
            println!("ok: {url} answered 200");
            ExitCode::SUCCESS
        }
        Ok(Ok(status)) => {
            eprintln!("unhealthy: {url} answered {status}");
            ExitCode::from(1)
        }
        Ok(Err(e)) => {
            eprintln!("unhealthy: {url}: {e}");
            ExitCode::from(1)
        }
        Err(_) => {
            eprintln!("unhealthy: {url}: no answer within {}s", limit.as_secs());
            ExitCode::from(1)
        }
    }
}

/// A listener on the unspecified address (`0.0.0.0`, `[::]`) is asked on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

async fn get(addr: SocketAddr, path: &str) -> Result<StatusCode, Box<dyn std::error::Error>> {
    let tcp = TcpStream::connect(addr).await?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let req = Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())?;
    Ok(send.send_request(req).await?.status())
}
