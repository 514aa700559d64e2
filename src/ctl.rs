//! `switchboard ctl …` commands that talk to a node's admin HTTP API (the
//! replication ones, status and promote, talk to its replication port). Tables by
//! default, the API's JSON with `--json`.

use anyhow::{Context, bail};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;

#[derive(clap::Args, Debug, Clone)]
pub struct Target {
    /// The node's admin API.
    #[arg(
        long,
        default_value = "http://127.0.0.1:15672",
        env = "SWITCHBOARD_ADMIN_URL"
    )]
    pub admin: String,
    /// A user with the management or administrator tag.
    #[arg(short = 'u', long, default_value = "guest")]
    pub user: String,
    #[arg(
        short = 'p',
        long,
        default_value = "guest",
        env = "SWITCHBOARD_ADMIN_PASSWORD"
    )]
    pub password: String,
    /// The vhost the list commands and purge act on.
    #[arg(long, default_value = "/")]
    pub vhost: String,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Subcommand, Debug)]
pub enum AdminAction {
    /// Queues of the vhost: name, messages ready and unacknowledged, consumers.
    ListQueues,
    /// Connections of every protocol.
    ListConnections,
    /// Users and their tags.
    ListUsers,
    /// Exchanges of the vhost.
    ListExchanges,
    /// Adds or replaces a user.
    AddUser {
        name: String,
        password: String,
        /// Comma-separated: administrator, management, monitoring.
        #[arg(long, default_value = "")]
        tags: String,
    },
    DeleteUser {
        name: String,
    },
    /// Users' permissions (configure, write, read patterns) in every vhost.
    ListPermissions,
    /// Sets a user's permissions in the vhost (`--vhost`), as
    /// `rabbitmqctl set_permissions`: regular expressions over resource names.
    SetPermissions {
        user: String,
        configure: String,
        write: String,
        read: String,
    },
    /// Removes a user's permissions in the vhost.
    ClearPermissions {
        user: String,
    },
    /// Removes a queue's ready messages.
    Purge {
        queue: String,
    },
    /// Closes a connection (its name as `list-connections` shows it).
    CloseConnection {
        name: String,
    },
    /// Writes the definitions (RabbitMQ's JSON) to FILE, `-` for stdout.
    Export {
        file: String,
    },
    /// Loads a definitions file (RabbitMQ's JSON, e.g. from rabbitmqctl export_definitions).
    Import {
        file: String,
    },
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One request to the admin API; the JSON answer (Null for an empty one).
async fn call(
    t: &Target,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
) -> anyhow::Result<Value> {
    let url: hyper::Uri = format!("{}{path}", t.admin.trim_end_matches('/'))
        .parse()
        .context("bad --admin URL")?;
    let host = url.host().context("--admin needs a host")?.to_string();
    let port = url.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .with_context(|| format!("cannot reach the admin API at {}", t.admin))?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let auth =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", t.user, t.password));
    let req = hyper::Request::builder()
        .method(method)
        .uri(url.path_and_query().map_or("/", |p| p.as_str()))
        .header(hyper::header::HOST, format!("{host}:{port}"))
        .header(hyper::header::AUTHORIZATION, format!("Basic {auth}"))
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))?;
    let resp = send.send_request(req).await?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    let value: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    if !status.is_success() {
        let reason = value["reason"]
            .as_str()
            .map_or_else(|| value.to_string(), str::to_string);
        bail!("{method} {path}: {status}: {reason}");
    }
    Ok(value)
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Rows of `columns` as an aligned text table.
fn table(rows: &Value, columns: &[&str]) -> String {
    let rows: Vec<Vec<String>> = rows
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| columns.iter().map(|c| cell(&r[*c])).collect())
                .collect()
        })
        .unwrap_or_default();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(columns.iter().map(|c| c.to_string()).collect())];
    out.extend(rows.into_iter().map(line));
    out.join("\n") + "\n"
}

/// A change: made, then said.
async fn done(
    t: &Target,
    method: &str,
    path: &str,
    body: Option<Value>,
    said: &str,
) -> anyhow::Result<()> {
    call(t, method, path, body.map(|b| b.to_string().into_bytes())).await?;
    println!("{said}");
    Ok(())
}

pub async fn run(t: &Target, action: &AdminAction) -> anyhow::Result<()> {
    let v = encode(&t.vhost);
    let (answer, columns): (Value, &[&str]) = match action {
        AdminAction::ListQueues => (
            call(t, "GET", &format!("/api/queues/{v}"), None).await?,
            &[
                "name",
                "messages_ready",
                "messages_unacknowledged",
                "consumers",
                "durable",
            ],
        ),
        AdminAction::ListConnections => (
            call(t, "GET", "/api/connections", None).await?,
            &["name", "protocol", "user", "vhost", "channels"],
        ),
        AdminAction::ListUsers => (call(t, "GET", "/api/users", None).await?, &["name", "tags"]),
        AdminAction::ListExchanges => (
            call(t, "GET", &format!("/api/exchanges/{v}"), None).await?,
            &["name", "type", "durable"],
        ),
        AdminAction::AddUser {
            name,
            password,
            tags,
        } => {
            let body = serde_json::json!({"password": password, "tags": tags});
            let path = format!("/api/users/{}", encode(name));
            return done(t, "PUT", &path, Some(body), &format!("user {name} saved")).await;
        }
        AdminAction::ListPermissions => (
            call(t, "GET", "/api/permissions", None).await?,
            &["user", "vhost", "configure", "write", "read"],
        ),
        AdminAction::SetPermissions {
            user,
            configure,
            write,
            read,
        } => {
            let body = serde_json::json!({"configure": configure, "write": write, "read": read});
            let path = format!("/api/permissions/{v}/{}", encode(user));
            let said = format!("permissions of {user} in vhost {} set", t.vhost);
            return done(t, "PUT", &path, Some(body), &said).await;
        }
        AdminAction::ClearPermissions { user } => {
            let path = format!("/api/permissions/{v}/{}", encode(user));
            let said = format!("permissions of {user} in vhost {} cleared", t.vhost);
            return done(t, "DELETE", &path, None, &said).await;
        }
        AdminAction::DeleteUser { name } => {
            let path = format!("/api/users/{}", encode(name));
            return done(t, "DELETE", &path, None, &format!("user {name} deleted")).await;
        }
        AdminAction::Purge { queue } => {
            let path = format!("/api/queues/{v}/{}/contents", encode(queue));
            return done(t, "DELETE", &path, None, &format!("queue {queue} purged")).await;
        }
        AdminAction::CloseConnection { name } => {
            let path = format!("/api/connections/{}", encode(name));
            return done(
                t,
                "DELETE",
                &path,
                None,
                &format!("connection {name} closed"),
            )
            .await;
        }
        AdminAction::Export { file } => {
            let defs = call(t, "GET", "/api/definitions", None).await?;
            let text = serde_json::to_string_pretty(&defs)? + "\n";
            if file == "-" {
                print!("{text}");
            } else {
                std::fs::write(file, text).with_context(|| format!("cannot write {file}"))?;
                eprintln!("definitions written to {file}");
            }
            return Ok(());
        }
        AdminAction::Import { file } => {
            let body = std::fs::read(file).with_context(|| format!("cannot read {file}"))?;
            let answer = call(t, "POST", "/api/definitions", Some(body)).await?;
            for w in answer["warnings"].as_array().into_iter().flatten() {
                eprintln!("warning: {}", cell(w));
            }
            println!("definitions imported from {file}");
            return Ok(());
        }
    };
    if t.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print!("{}", table(&answer, columns));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_join_lists() {
        let rows = serde_json::json!([{"name": "a", "tags": ["x", "y"]}, {"name": "long-name", "tags": []}]);
        assert_eq!(
            table(&rows, &["name", "tags"]),
            "name       tags\na          x,y\nlong-name\n"
        );
        assert_eq!(encode("/"), "%2F");
    }
}
