//! A running sandbox: its own runtime thread serving HTTPS on loopback, the controller loop,
//! persistence, and the [`Sandbox`] handle tests and the CLI use to start, drive and stop it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::Error;
use crate::api::{ControlPlane, KargoMode, State};
use crate::auth::{User, Users};
use crate::clock::Clock;
use crate::faults::{Faults, HttpFault};
use crate::git::GitHost;
use crate::hooks::{ApiError, Control, Controller, Event, ObjectRef, Txn};
use crate::kargo::Kargo;
use crate::kubeconfig::{self, Endpoint};
use crate::persist::{Snapshot, StateDir};
use crate::reqlog::{RequestCounts, RequestLog, RequestRecord};
use crate::status;
use crate::store::{Store, meta_str};
use crate::tls;

const TICK: Duration = Duration::from_millis(50);
const FLUSH: Duration = Duration::from_millis(200);
/// Reconcile rounds per wake-up before the loop yields (a guard against controllers that
/// keep writing in response to their own writes).
const MAX_ROUNDS: usize = 1000;

/// Locks a mutex, carrying on if a panicking holder poisoned it (the state stays usable).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Lets a request's handler reset its connection (the `ResetAfterWrite` fault); handed to
/// handlers in the request's extensions.
#[derive(Clone)]
pub struct ConnectionReset(Arc<Notify>);

impl ConnectionReset {
    pub fn reset(&self) {
        self.0.notify_one();
    }
}

/// What the runtime thread, the HTTP handlers and the [`Sandbox`] handle share.
pub struct Shared {
    pub state: Mutex<State>,
    pub faults: Mutex<Faults>,
    pub log: Mutex<RequestLog>,
    pub clock: Arc<Clock>,
    /// Wakes the controller loop after commits.
    pub wake: Notify,
    /// Asks the controller loop for a tick now (a promotion step's work finished).
    pub tick_now: Arc<Notify>,
    /// Wakes the accept loop when connection refusal starts or is cleared.
    pub refuse: Notify,
    pub shutdown: CancellationToken,
    /// The Git repositories and pull requests the sandbox serves.
    pub git: Arc<GitHost>,
    address: OnceLock<String>,
    state_dir: Option<StateDir>,
    flushing: Mutex<()>,
    /// When this sandbox started (RFC 3339): the creation time of the CRDs it serves.
    pub started: String,
    /// The Kargo API server's admin account and token signing key.
    pub rest: crate::rest::AdminAccount,
    /// The base path Kargo's API server is served under (its `api.basePath`), `""` for none.
    pub rest_base_path: String,
}

impl Shared {
    /// `host:port` the API listens on.
    pub fn address(&self) -> String {
        self.address.get().cloned().unwrap_or_default()
    }

    pub fn install_kargo(&self) {
        let mut state = lock(&self.state);
        state.kargo = KargoMode {
            served: true,
            running: true,
        };
        state.store.record_events = true;
        // Controllers that start see every existing object, as an informer's initial list.
        let mut initial = Vec::new();
        for (res, obj) in state.store.all() {
            if res.is_kargo() || res.is_namespace() {
                initial.push(Event::Added(ObjectRef {
                    group: res.group.to_string(),
                    resource: res.plural.to_string(),
                    namespace: meta_str(obj, "namespace").map(str::to_string),
                    name: meta_str(obj, "name").unwrap_or_default().to_string(),
                }));
            }
        }
        state.store.queue(initial);
        state.store.dirty = true;
        drop(state);
        tracing::info!("Kargo installed: CRDs served, webhooks and controllers running");
        self.wake.notify_one();
    }

    pub fn uninstall_kargo(&self) {
        let mut state = lock(&self.state);
        state.kargo.running = false;
        state.store.record_events = false;
        state.store.take_pending();
        state.store.dirty = true;
        tracing::info!(
            "Kargo uninstalled: webhooks and controllers stopped; CRDs and objects stay"
        );
    }

    pub fn control(&self, name: &str, body: &Value) -> Result<Value, ApiError> {
        let mut state = lock(&self.state);
        if !state.kargo.served {
            return Err(ApiError::new(
                404,
                "NotFound",
                "Kargo is not installed in this sandbox (run `kargo-sandbox install-kargo`)",
            ));
        }
        let hooks = state.hooks.clone();
        let out = hooks.control(&mut ControlPlane { state: &mut state }, name, body);
        drop(state);
        self.wake.notify_one();
        out
    }

    pub fn add_fault(&self, fault: HttpFault) -> Result<(), String> {
        let refuse = fault.kind == crate::faults::FaultKind::Refuse;
        lock(&self.faults).add(fault)?;
        if refuse {
            self.refuse.notify_one();
        }
        Ok(())
    }

    /// Clears HTTP faults and asks Kargo to clear its own.
    pub fn clear_faults(&self) -> Result<(), ApiError> {
        lock(&self.faults).clear();
        self.git.clear_faults();
        self.refuse.notify_one();
        let served = lock(&self.state).kargo.served;
        if served {
            match self.control("clear-faults", &Value::Object(Default::default())) {
                Ok(_) => {}
                // Kargo without fault injection has nothing to clear.
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub fn advance_clock(&self, by: Duration) {
        self.clock.advance(by);
        lock(&self.state).store.dirty = true;
        self.wake.notify_one();
    }

    pub fn add_user(&self, user: User) {
        let mut state = lock(&self.state);
        state.users.add(user);
        state.store.dirty = true;
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.log).records()
    }

    pub fn request_counts(&self) -> RequestCounts {
        lock(&self.log).counts()
    }

    pub fn reset_requests(&self) {
        lock(&self.log).reset();
    }

    fn snapshot(&self) -> Option<Snapshot> {
        let mut state = lock(&self.state);
        if !state.store.dirty {
            return None;
        }
        state.store.dirty = false;
        let (resource_version, objects) = state.store.snapshot();
        Some(Snapshot {
            resource_version,
            kargo: state.kargo,
            users: state.users.list().to_vec(),
            clock_offset_ms: self.clock.offset_ms(),
            objects,
        })
    }

    fn flush(&self) {
        let Some(dir) = &self.state_dir else { return };
        // Snapshots are written one at a time, in the order they were taken.
        let _writing = lock(&self.flushing);
        if let Some(snap) = self.snapshot()
            && let Err(e) = dir.save(&snap)
        {
            tracing::error!(error = %e, "cannot save sandbox state");
            lock(&self.state).store.dirty = true;
        }
    }

    /// Lets Kargo's controllers handle queued commits, and tick when `tick` is set.
    fn run_controllers(&self, tick: bool) {
        let mut state = lock(&self.state);
        if !state.kargo.running {
            return;
        }
        let hooks = state.hooks.clone();
        if tick {
            hooks.tick(&mut ControlPlane { state: &mut state });
        }
        for _ in 0..MAX_ROUNDS {
            let events = state.store.take_pending();
            if events.is_empty() {
                return;
            }
            for e in &events {
                hooks.reconcile(&mut ControlPlane { state: &mut state }, e);
            }
        }
        tracing::warn!(
            "controllers are still producing changes after {MAX_ROUNDS} rounds; continuing later"
        );
    }
}

/// How to start a sandbox.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where to listen (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// The admin bearer token; random (or the state directory's) when `None`.
    pub token: Option<String>,
    /// Where to write the kubeconfig; a private temporary directory when `None`.
    pub kubeconfig: Option<PathBuf>,
    /// Whether Kargo (CRDs, webhooks, controllers) is installed at start.
    pub with_kargo: bool,
    /// Keep objects, counters, CA and token here across restarts.
    pub state_dir: Option<PathBuf>,
    /// The Kargo API server's admin password (`POST /v1beta1/login`); the admin bearer
    /// token when `None`.
    pub admin_password: Option<String>,
    /// How long an admin login token lives (Kargo's default: 24 hours).
    pub admin_token_ttl: Duration,
    /// Offer HTTP/2 by ALPN beside HTTP/1.1, as Kargo's API server (Go's net/http) does.
    pub http2: bool,
    /// Serve Kargo's REST API under this base path (e.g. `/kargo`) instead of at the root,
    /// as Kargo's `api.basePath` does.
    pub rest_base_path: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: None,
            kubeconfig: None,
            with_kargo: true,
            state_dir: None,
            admin_password: None,
            admin_token_ttl: crate::rest::DEFAULT_TOKEN_TTL,
            http2: false,
            rest_base_path: None,
        }
    }
}

impl Options {
    pub fn without_kargo(mut self) -> Self {
        self.with_kargo = false;
        self
    }

    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    pub fn kubeconfig(mut self, path: impl Into<PathBuf>) -> Self {
        self.kubeconfig = Some(path.into());
        self
    }

    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Sets the Kargo API server's admin password.
    pub fn admin_password(mut self, password: impl Into<String>) -> Self {
        self.admin_password = Some(password.into());
        self
    }

    /// Serves Kargo's REST API under `path` (e.g. `/kargo`).
    pub fn rest_base_path(mut self, path: impl Into<String>) -> Self {
        self.rest_base_path = Some(path.into());
        self
    }

    /// Offers HTTP/2 (by ALPN) as well as HTTP/1.1.
    pub fn http2(mut self) -> Self {
        self.http2 = true;
        self
    }

    /// Sets how long admin login tokens live.
    pub fn admin_token_ttl(mut self, ttl: Duration) -> Self {
        self.admin_token_ttl = ttl;
        self
    }
}

/// A running sandbox. Stops on [`Sandbox::shutdown`] or when dropped.
///
/// ```no_run
/// # async fn demo() -> Result<(), kargo_sandbox::Error> {
/// use kargo_sandbox::{Options, Sandbox};
/// let sandbox = Sandbox::start(Options::default()).await?;
/// println!("KUBECONFIG={}", sandbox.kubeconfig_path().display());
/// sandbox.shutdown().await;
/// # Ok(()) }
/// ```
pub struct Sandbox {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
    kubeconfig: PathBuf,
    temp_dir: Option<PathBuf>,
    server_url: String,
    token: String,
    ca_pem: String,
}

fn random_token() -> String {
    let b: [u8; 24] = rand::random();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // Rebinding the same port after a refusal fault must not wait for TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

impl Sandbox {
    /// Starts a sandbox on its own runtime thread and returns once it serves and the
    /// kubeconfig is written.
    pub async fn start(opts: Options) -> Result<Sandbox, Error> {
        let started = Instant::now();
        let state_dir = opts.state_dir.as_deref().map(StateDir::open).transpose()?;
        let material = match state_dir
            .as_ref()
            .map(StateDir::load_tls)
            .transpose()?
            .flatten()
        {
            Some(m) => m,
            None => {
                let m = tls::generate()?;
                if let Some(dir) = &state_dir {
                    dir.save_tls(&m)?;
                }
                m
            }
        };
        let saved_token = state_dir
            .as_ref()
            .map(StateDir::load_token)
            .transpose()?
            .flatten();
        let token = opts
            .token
            .clone()
            .or(saved_token)
            .unwrap_or_else(random_token);
        if let Some(dir) = &state_dir {
            dir.save_token(&token)?;
        }
        let snapshot = state_dir
            .as_ref()
            .map(StateDir::load)
            .transpose()?
            .flatten();
        // With a state directory and no fixed port, try the previous port first so existing
        // copies of the kubeconfig keep working.
        let mut listen = Vec::new();
        if opts.listen.port() == 0
            && let Some(dir) = &state_dir
            && let Some(previous) = dir.load_address()?
        {
            listen.push(previous);
        }
        listen.push(opts.listen);
        let server_config = tls::server_config(&material, opts.http2)?;

        let (rv, objects, users, offset, persisted) = match snapshot {
            Some(s) => (
                s.resource_version,
                s.objects,
                s.users,
                s.clock_offset_ms,
                Some(s.kargo),
            ),
            None => (0, Vec::new(), Vec::new(), 0, None),
        };
        let kargo = match (opts.with_kargo, persisted) {
            (true, _) => KargoMode {
                served: true,
                running: true,
            },
            (false, Some(p)) => p,
            (false, None) => KargoMode {
                served: false,
                running: false,
            },
        };
        let git = Arc::new(match &state_dir {
            Some(dir) => GitHost::open(dir.git_root(), &material.ca_pem, false)?,
            None => GitHost::open(
                std::env::temp_dir().join(format!(
                    "kargo-sandbox-git-{}-{}",
                    std::process::id(),
                    random_token()
                )),
                &material.ca_pem,
                true,
            )?,
        });
        let tick_now = Arc::new(Notify::new());
        let clock = Arc::new(Clock::new(offset));
        let mut store = Store::new(rv, objects);
        store.record_events = kargo.running;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                store,
                kargo,
                users: Users::new(token.clone(), users),
                clock: clock.clone(),
                hooks: Arc::new(Kargo::with_git(git.clone(), tick_now.clone())),
            }),
            faults: Mutex::new(Faults::default()),
            log: Mutex::new(RequestLog::default()),
            clock: clock.clone(),
            wake: Notify::new(),
            tick_now,
            refuse: Notify::new(),
            shutdown: CancellationToken::new(),
            git,
            address: OnceLock::new(),
            state_dir,
            flushing: Mutex::new(()),
            started: crate::kargo::util::format_time(clock.now()),
            rest: crate::rest::AdminAccount::new(
                opts.admin_password.clone().unwrap_or_else(|| token.clone()),
                opts.admin_token_ttl,
            ),
            rest_base_path: opts
                .rest_base_path
                .as_deref()
                .map(|p| format!("/{}", p.trim_matches('/')))
                .filter(|p| p != "/")
                .unwrap_or_default(),
        });
        if kargo.running {
            shared.install_kargo();
        }

        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("kargo-sandbox".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("kargo-sandbox-worker")
                    .enable_all()
                    .build();
                match runtime {
                    Ok(rt) => rt.block_on(run(thread_shared, listen, server_config, ready_tx)),
                    Err(e) => {
                        let _ = ready_tx.send(Err(Error::Io(e)));
                    }
                }
            })?;
        let addr = match ready_rx.await {
            Ok(Ok(addr)) => addr,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(Error::State(
                    "the sandbox runtime stopped while starting".into(),
                ));
            }
        };
        if let Some(dir) = &shared.state_dir {
            dir.save_address(addr)?;
        }
        let server_url = format!("https://{addr}");
        let (kubeconfig, temp_dir) = match opts.kubeconfig {
            Some(p) => (p, None),
            None => {
                let dir = std::env::temp_dir().join(format!(
                    "kargo-sandbox-{}-{}",
                    std::process::id(),
                    random_token()
                ));
                (dir.join("kubeconfig"), Some(dir))
            }
        };
        let sandbox = Sandbox {
            shared,
            thread: Some(thread),
            kubeconfig,
            temp_dir,
            server_url,
            token,
            ca_pem: material.ca_pem,
        };
        let endpoint = Endpoint {
            server: sandbox.server_url.clone(),
            ca_pem: sandbox.ca_pem.clone(),
            token: sandbox.token.clone(),
        };
        kubeconfig::write_atomic(
            &sandbox.kubeconfig,
            kubeconfig::render(&endpoint).as_bytes(),
        )?;
        tracing::info!(
            url = %sandbox.server_url,
            kubeconfig = %sandbox.kubeconfig.display(),
            kargo = kargo.served,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "sandbox ready"
        );
        Ok(sandbox)
    }

    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// The admin bearer token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The Kargo API server's admin password (`POST /v1beta1/login`).
    pub fn admin_password(&self) -> &str {
        self.shared.rest.password()
    }

    /// The Kargo REST API's base URL (`https://<address>[/base path]/v1beta1`).
    pub fn api_url(&self) -> String {
        format!("{}/v1beta1", self.api_server_url())
    }

    /// Kargo's API server's URL, with its base path: what a client is configured with.
    pub fn api_server_url(&self) -> String {
        format!("{}{}", self.server_url, self.shared.rest_base_path)
    }

    /// The CA certificate (PEM) clients must trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Serves Kargo's CRDs and starts its webhooks and controllers.
    pub fn install_kargo(&self) {
        self.shared.install_kargo();
    }

    /// Stops Kargo's webhooks and controllers; CRDs and objects stay, finalizers are no
    /// longer processed (as when the Helm release is removed).
    pub fn uninstall_kargo(&self) {
        self.shared.uninstall_kargo();
    }

    /// Sends a command to Kargo's control side (`publish`, `fail-promotion`, …).
    pub fn control(&self, name: &str, body: &Value) -> Result<Value, ApiError> {
        self.shared.control(name, body)
    }

    /// Injects an HTTP-level fault.
    pub fn inject_fault(&self, fault: HttpFault) -> Result<(), ApiError> {
        self.shared.add_fault(fault).map_err(status::bad_request)
    }

    /// Clears HTTP faults and Kargo's faults.
    pub fn clear_faults(&self) -> Result<(), ApiError> {
        self.shared.clear_faults()
    }

    /// Moves the sandbox clock (`Txn::now()`, timestamps) forward.
    pub fn advance_clock(&self, by: Duration) {
        self.shared.advance_clock(by);
    }

    /// The sandbox clock's current time.
    pub fn now(&self) -> jiff::Timestamp {
        self.shared.clock.now()
    }

    /// Adds a restricted user.
    pub fn add_user(&self, user: User) {
        self.shared.add_user(user);
    }

    /// The request log, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.requests()
    }

    /// Request counts by verb and resource.
    pub fn request_counts(&self) -> RequestCounts {
        self.shared.request_counts()
    }

    pub fn reset_requests(&self) {
        self.shared.reset_requests();
    }

    /// Creates a Git repository the sandbox serves (one commit of the files under `from`
    /// when given, on `branch`; private when `auth` is given) and returns its URL,
    /// `https://<address>/git/<name>.git`.
    ///
    /// ```no_run
    /// # async fn demo(sandbox: kargo_sandbox::Sandbox) -> Result<(), String> {
    /// let url = sandbox.git_create("gitops", Some(std::path::Path::new("./seed")), "main", None)?;
    /// # let _ = url; Ok(()) }
    /// ```
    pub fn git_create(
        &self,
        name: &str,
        from: Option<&Path>,
        branch: &str,
        auth: Option<crate::git::BasicAuth>,
    ) -> Result<String, String> {
        self.shared.git.create(name, from, branch, auth)
    }

    /// The sandbox's Git host: served repositories and their pull requests.
    pub fn git(&self) -> &GitHost {
        &self.shared.git
    }

    /// Reads an object straight from the store (no request is logged).
    pub fn get(
        &self,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let mut state = lock(&self.shared.state);
        state.as_control_plane(|txn| txn.get(group, resource, namespace, name))
    }

    /// Every stored object of API group `group` (`""` for the core group), as
    /// `plural/namespace/name` or `plural/name`, sorted; for asserting what is left.
    pub fn object_names(&self, group: &str) -> Vec<String> {
        let state = lock(&self.shared.state);
        let mut names: Vec<String> = state
            .store
            .all()
            .filter(|(res, _)| res.group == group)
            .map(|(res, obj)| {
                let name = meta_str(obj, "name").unwrap_or_default();
                match meta_str(obj, "namespace") {
                    Some(ns) => format!("{}/{ns}/{name}", res.plural),
                    None => format!("{}/{name}", res.plural),
                }
            })
            .collect();
        names.sort();
        names
    }

    /// Runs `f` against the store as Kargo's control plane would (writes commit at once).
    pub fn with_txn<R>(&self, f: impl FnOnce(&mut dyn Txn) -> R) -> R {
        let out = lock(&self.shared.state).as_control_plane(f);
        self.shared.wake.notify_one();
        out
    }

    /// Stops serving, saves state (with `--state-dir`) and waits for the runtime to end.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Some(dir) = &self.temp_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

async fn run(
    shared: Arc<Shared>,
    listen: Vec<SocketAddr>,
    server_config: Arc<rustls::ServerConfig>,
    ready: tokio::sync::oneshot::Sender<Result<SocketAddr, Error>>,
) {
    let mut bound = Err(std::io::Error::other("no address to listen on"));
    for addr in listen {
        bound = bind(addr);
        if bound.is_ok() {
            break;
        }
    }
    let listener = match bound {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err(Error::Io(e)));
            return;
        }
    };
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            let _ = ready.send(Err(Error::Io(e)));
            return;
        }
    };
    let _ = shared.address.set(addr.to_string());
    shared.git.set_address(&addr.to_string());
    tokio::spawn(controller_loop(shared.clone()));
    if shared.state_dir.is_some() {
        tokio::spawn(flush_loop(shared.clone()));
    }
    // Parse the CRD schemas now rather than on the first Kargo write.
    tokio::task::spawn_blocking(crate::schema::catalog);
    let _ = ready.send(Ok(addr));
    accept_loop(&shared, listener, addr, TlsAcceptor::from(server_config)).await;
    shared.flush();
}

async fn controller_loop(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let is_tick = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = shared.wake.notified() => false,
            _ = shared.tick_now.notified() => true,
            _ = tick.tick() => true,
        };
        shared.run_controllers(is_tick);
    }
}

async fn flush_loop(shared: Arc<Shared>) {
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tokio::time::sleep(FLUSH) => shared.flush(),
        }
    }
}

async fn accept_loop(
    shared: &Arc<Shared>,
    mut listener: TcpListener,
    addr: SocketAddr,
    tls: TlsAcceptor,
) {
    let app = crate::router::app(shared.clone());
    let mut connections = shared.shutdown.child_token();
    loop {
        let refusing = lock(&shared.faults).refusing();
        if let Some(until) = refusing {
            drop(listener);
            connections.cancel();
            connections = shared.shutdown.child_token();
            tracing::info!(
                for_ms = until.saturating_duration_since(Instant::now()).as_millis() as u64,
                "refusing connections"
            );
            tokio::select! {
                _ = shared.shutdown.cancelled() => return,
                _ = tokio::time::sleep_until(until.into()) => {}
                _ = shared.refuse.notified() => {}
            }
            listener = loop {
                match bind(addr) {
                    Ok(l) => break l,
                    Err(e) => {
                        tracing::warn!(error = %e, %addr, "cannot listen again yet");
                        tokio::select! {
                            _ = shared.shutdown.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                        }
                    }
                }
            };
            tracing::info!("accepting connections again");
            continue;
        }
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = shared.refuse.notified() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    tokio::spawn(serve_connection(shared.clone(), app.clone(), tcp, tls.clone(), connections.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
        }
    }
}

async fn serve_connection(
    shared: Arc<Shared>,
    app: axum::Router,
    tcp: TcpStream,
    tls: TlsAcceptor,
    stop: CancellationToken,
) {
    let _ = tcp.set_nodelay(true);
    // A second handle on the socket, to close it with a reset (SO_LINGER 0) when a fault
    // asks while the connection owns the first.
    let split = tcp.into_std().and_then(|std| {
        let twin = std.try_clone()?;
        Ok((TcpStream::from_std(std)?, twin))
    });
    let (tcp, twin) = match split {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(error = %e, "cannot set up the connection");
            return;
        }
    };
    let stream = tokio::select! {
        _ = stop.cancelled() => return,
        r = tokio::time::timeout(Duration::from_secs(10), tls.accept(tcp)) => match r {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => return,
        },
    };
    let reset = ConnectionReset(Arc::new(Notify::new()));
    let handle = reset.clone();
    let service = service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(handle.clone());
        let (app, clock) = (app.clone(), shared.clock.clone());
        async move {
            let mut resp = app.oneshot(req).await?;
            // The sandbox's (movable) clock, not hyper's wall clock: clients measure soak
            // times against the server's Date.
            if let Ok(date) = http::HeaderValue::from_str(&clock.http_date()) {
                resp.headers_mut().insert(http::header::DATE, date);
            }
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
    let conn = async move {
        if h2 {
            hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await
        } else {
            hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
        }
    };
    tokio::select! {
        r = conn => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended");
            }
        }
        _ = stop.cancelled() => {}
        _ = reset.0.notified() => {
            match TcpStream::from_std(twin).and_then(|t| t.set_zero_linger()) {
                Ok(()) => tracing::debug!("connection reset by a fault"),
                Err(e) => tracing::debug!(error = %e, "cannot reset the connection; closing it"),
            }
        }
    }
}
