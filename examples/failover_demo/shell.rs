//! How the demo prints and runs things: step titles, the seed's command lines, Kafka's command-line tools,
//! curl (or franzgate's own HTTP client when curl is missing), and the sampler of the processes' memory.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};

use super::kafka;

/// The admin API user of the seed's curl calls (Conduktor Gateway's default, which franzgate shares).
pub const ADMIN: (&str, &str) = ("admin", "conduktor");

/// Prints the demo: numbered steps, commands, their output.
pub struct Narrator<'a> {
    out: &'a mut (dyn Write + Send),
    step: usize,
    started: std::time::Instant,
}

impl<'a> Narrator<'a> {
    pub fn new(out: &'a mut (dyn Write + Send)) -> Self {
        Self { out, step: 0, started: std::time::Instant::now() }
    }

    /// A new step: its title and what it does.
    pub fn step(&mut self, title: &str, description: &str) -> anyhow::Result<()> {
        self.step += 1;
        let at = self.started.elapsed().as_secs();
        writeln!(self.out, "\n==> {}. {title}   [{}:{:02}]", self.step, at / 60, at % 60)?;
        if !description.is_empty() {
            writeln!(self.out, "{}", indent(description, "    "))?;
        }
        Ok(())
    }

    /// A command, as the seed writes it.
    pub fn command(&mut self, command: &str) -> anyhow::Result<()> {
        writeln!(self.out, "$ {command}")?;
        Ok(())
    }

    /// Any text (a command's output, a note).
    pub fn say(&mut self, text: &str) -> anyhow::Result<()> {
        writeln!(self.out, "{}", text.trim_end())?;
        Ok(())
    }
}

pub fn indent(text: &str, prefix: &str) -> String {
    text.lines().map(|l| format!("{prefix}{l}")).collect::<Vec<_>>().join("\n")
}

/// A Kafka tool's invocation: `lines` are its arguments as the seed lays them out, one or two words a line.
pub struct Tool<'a> {
    pub name: &'a str,
    pub lines: Vec<String>,
    /// The record fed to a producer (`echo '...' | kafka-console-producer ...`).
    pub echo: Option<&'a str>,
    /// Piped into `| jq` as in the seed (the demo pretty-prints the JSON records itself).
    pub jq: bool,
}

/// What a tool printed.
pub struct Run {
    pub stdout: String,
    pub stderr: String,
    pub success: bool,
}

impl Run {
    /// The JSON records a console consumer printed, in order.
    pub fn records(&self) -> Vec<serde_json::Value> {
        self.stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// The `name` of each record (tom, laura, alice).
    pub fn names(&self) -> Vec<String> {
        self.records().iter().filter_map(|r| r["name"].as_str().map(str::to_string)).collect()
    }
}

impl Tool<'_> {
    /// The command line as the seed prints it.
    pub fn shell(&self) -> String {
        let (mut text, pad) = match self.echo {
            Some(record) => (format!("echo '{record}' | \\\n    {}", self.name), "        "),
            None => (self.name.to_string(), "    "),
        };
        for line in &self.lines {
            text.push_str(&format!(" \\\n{pad}{line}"));
        }
        if self.jq {
            text.push_str(" | jq");
        }
        text
    }

    /// Runs the tool in `dir` (where teamA-sa.properties is), at most `limit`.
    pub async fn run(&self, dir: &Path, limit: Duration) -> anyhow::Result<Run> {
        let args: Vec<&str> = self.lines.iter().flat_map(|l| l.split_whitespace()).collect();
        let mut child = tokio::process::Command::new(kafka::kafka_bin(self.name))
            .args(&args)
            .current_dir(dir)
            .stdin(if self.echo.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.name))?;
        if let (Some(record), Some(mut stdin)) = (self.echo, child.stdin.take()) {
            use tokio::io::AsyncWriteExt;
            stdin.write_all(format!("{record}\n").as_bytes()).await?;
        }
        let output = tokio::time::timeout(limit, child.wait_with_output())
            .await
            .with_context(|| format!("{} still running after {limit:?}", self.name))??;
        Ok(Run {
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            success: output.status.success(),
        })
    }

    /// Prints the command, runs it and prints what it printed (JSON records pretty-printed like `jq`, a token
    /// secret in the gateway's state topic redacted).
    pub async fn show(&self, say: &mut Narrator<'_>, dir: &Path) -> anyhow::Result<Run> {
        say.command(&self.shell())?;
        let run = self.run(dir, Duration::from_secs(120)).await?;
        let mut shown = String::new();
        for line in run.stderr.lines().filter(|l| !l.trim().is_empty()) {
            shown.push_str(line);
            shown.push('\n');
        }
        shown.push_str(&pretty_records(&run.stdout, self.jq).await);
        say.say(&shown)?;
        Ok(run)
    }
}

/// A console consumer's records as `| jq` prints them (with jq when installed; else serde_json, which sorts
/// the keys), a token secret from the gateway's state topic redacted.
async fn pretty_records(stdout: &str, jq: bool) -> String {
    const REDACTED: &str = "<the generated token secret, redacted by the demo>";
    let is_json = |l: &&str| serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v.is_object());
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    let (records, other): (Vec<&str>, Vec<&str>) = lines.into_iter().partition(is_json);
    let mut shown: String = other.iter().map(|l| format!("{l}\n")).collect();
    if !jq {
        return stdout.to_string();
    }
    let records = records.join("\n");
    if installed("jq") && !records.is_empty() {
        let filter = format!(r#"if has("secret") then .secret = "{REDACTED}" else . end"#);
        let child = tokio::process::Command::new("jq")
            .arg(filter)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        if let Ok(mut child) = child {
            use tokio::io::AsyncWriteExt;
            if let Some(mut stdin) = child.stdin.take() {
                let _ = stdin.write_all(records.as_bytes()).await;
            }
            if let Ok(output) = child.wait_with_output().await {
                if output.status.success() {
                    shown.push_str(&String::from_utf8_lossy(&output.stdout));
                    return shown;
                }
            }
        }
    }
    for line in records.lines() {
        let mut value: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        if value.get("secret").is_some() {
            value["secret"] = REDACTED.into();
        }
        shown.push_str(&serde_json::to_string_pretty(&value).unwrap_or_default());
        shown.push('\n');
    }
    shown
}

/// Whether a program is installed (`command -v NAME`).
pub fn installed(program: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether curl is installed (`command -v curl`).
pub fn have_curl() -> bool {
    installed("curl")
}

/// POSTs to a gateway's admin API as the seed does (`curl --request POST ... --user 'admin:conduktor'`), with
/// curl when installed, else franzgate's HTTP client. Prints the seed's command and the pretty JSON answer;
/// returns the answer's body as sent.
pub async fn post(say: &mut Narrator<'_>, port: u16, path: &str, body: Option<&str>) -> anyhow::Result<String> {
    let url = format!("http://localhost:{port}{path}");
    let mut shown = format!("curl \\\n  --request POST '{url}' \\\n");
    if body.is_some() {
        shown.push_str("  --header 'Content-Type: application/json' \\\n");
    }
    shown.push_str(&format!("  --user '{}:{}' \\\n  --silent", ADMIN.0, ADMIN.1));
    if let Some(body) = body {
        shown.push_str(&format!(" \\\n  --data-raw '{body}'"));
    }
    shown.push_str(" | jq");
    say.command(&shown)?;
    let answer = if have_curl() {
        let mut curl = tokio::process::Command::new("curl");
        curl.args(["--request", "POST", &url]);
        if body.is_some() {
            curl.args(["--header", "Content-Type: application/json"]);
        }
        curl.args(["--user", &format!("{}:{}", ADMIN.0, ADMIN.1), "--silent", "--show-error"]);
        if let Some(body) = body {
            curl.args(["--data-raw", body]);
        }
        let output = curl.output().await.context("running curl")?;
        if !output.status.success() {
            bail!("curl {url}: {}", String::from_utf8_lossy(&output.stderr));
        }
        String::from_utf8_lossy(&output.stdout).into_owned()
    } else {
        let addr = format!("127.0.0.1:{port}");
        let (_, value) =
            franzgate::admin::client::call_with_body(&addr, "POST", path, Some(ADMIN), body.unwrap_or("").to_string())
                .await
                .map_err(anyhow::Error::msg)?;
        value.to_string()
    };
    say.say(&pretty_records(answer.trim(), true).await)?;
    Ok(answer)
}

/// The memory of every process the demo started (Kafka's JVMs, MirrorMaker, the gateways, the tools), sampled
/// from /proc until stopped; keeps the highest total.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<Mutex<Peak>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The highest total resident memory seen, and its parts.
#[derive(Clone, Copy, Debug, Default)]
pub struct Peak {
    /// All descendant processes, bytes.
    pub total: u64,
    /// Of which Java (brokers, MirrorMaker, tools).
    pub java: u64,
    /// Of which franzgate.
    pub franzgate: u64,
    /// How many processes at that moment.
    pub processes: usize,
}

impl RssSampler {
    pub fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(Mutex::new(Peak::default()));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let now = sample();
                let mut peak = p.lock().expect("peak");
                if now.total > peak.total {
                    *peak = now;
                }
                drop(peak);
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        Self { stop, peak, thread: Some(thread) }
    }

    /// Stops sampling; the peak.
    pub fn finish(mut self) -> Peak {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        *self.peak.lock().expect("peak")
    }
}

/// The resident memory of this process's descendants now.
fn sample() -> Peak {
    let mut parent_of = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // `pid (comm) state ppid ...`: comm may hold spaces, so split after its closing parenthesis.
        let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent_of.push((pid, ppid));
        }
    }
    let mut ours = vec![std::process::id()];
    let mut i = 0;
    while i < ours.len() {
        let parent = ours[i];
        ours.extend(parent_of.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    let mut peak = Peak::default();
    for pid in &ours[1..] {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { continue };
        let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).map(str::trim);
        let rss = field("VmRSS:").and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok()).unwrap_or(0) * 1024;
        let name = field("Name:").unwrap_or("");
        peak.total += rss;
        peak.processes += 1;
        if name == "java" {
            peak.java += rss;
        } else if name.starts_with("franzgate") {
            peak.franzgate += rss;
        }
    }
    peak
}

pub fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}
