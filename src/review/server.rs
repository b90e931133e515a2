//! The review web app: an axum router over one [`Store`], serving the page (a minijinja template,
//! auto-escaped), its script and style sheet (embedded), the review's images by id, and a small
//! JSON API; and [`serve`], which binds, serves and shuts down cleanly on Ctrl-C or SIGTERM.
//!
//! Safety rules (ARCHITECTURE.md, rule 10), each enforced here:
//! - Loopback by default; [`super::ServeConfig::check`] refuses any other address without a
//!   token. With a token, every request must carry it: `Authorization: Bearer T`, or the cookie
//!   set when the page is opened as `/?token=T` (`HttpOnly; SameSite=Strict`).
//! - On a loopback address the `Host` header must name it (a page on another site cannot reach
//!   the server through DNS rebinding); a state-changing request with an `Origin` must come from
//!   the server's own origin, and must be `application/json` (so a cross-site form cannot post).
//! - Images are looked up by id in the map built from the review set ([`super::Prepared::images`],
//!   through `ImageDir`); nothing from a request is ever joined to a path.
//! - Request bodies are limited to [`BODY_LIMIT`] bytes; every field is checked and answered with
//!   a 4xx status and a JSON `{"error": ...}` message; store failures are 500.
//! - A write is answered only after its SQLite transaction commits ([`Store::apply`]).
//! - A store failure (a 500) is also told, with its causes, to the [`Events`] sink the server was
//!   given ([`Event::ServerError`]); the browser gets only the message.
//!
//! API (JSON): `GET /api/state`; `GET /api/items/{position}` (0-based review order);
//! `POST /api/items/{position}/truth` (shows the ground truth, and records that it was shown);
//! `GET /api/images/{id}`; `GET /api/search?q=&limit=`; `POST /api/verdict`
//! `{image, cui, verdict: "correct"|"wrong"|"unsure"|null, request_id}`; `POST /api/missing`
//! `{image, cui | text, request_id}`; `POST /api/missing/remove` `{image, term, request_id}`;
//! `POST /api/done` `{image, request_id}`.
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use minijinja::{AutoEscape, Environment};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::store::{server_request_id, Ack, Action, ActionKind, Store};
use super::terms::{Hit, Terms, MAX_QUERY};
use super::{BlindMode, Prepared, ReviewError, ReviewSet, ServeConfig, Verdict};
use crate::classify::Classify;
use crate::events::{Event, Events};

/// Largest request body accepted (bytes).
pub(crate) const BODY_LIMIT: usize = 16 * 1024;
/// Longest free-text missing term (characters).
pub(crate) const MAX_TERM: usize = 200;
/// Most search results per request.
pub(crate) const MAX_RESULTS: usize = 50;

const PAGE: &str = include_str!("templates/review.html");
const SCRIPT: &str = include_str!("static/review.js");
const STYLE: &str = include_str!("static/review.css");

/// Who may talk to the server.
struct Auth {
    token: Option<String>,
    cookie: String,
    /// `Host` values accepted (loopback binds only).
    hosts: Option<Vec<String>>,
}

/// The server's state: the review, its store, the images by id, the vocabulary, and where its
/// server errors are reported.
pub(crate) struct App {
    set: ReviewSet,
    store: Mutex<Store>,
    images: HashMap<String, PathBuf>,
    terms: Terms,
    reviewer: String,
    auth: Auth,
    page: String,
    events: Arc<dyn Events + Send + Sync>,
}

impl App {
    /// The app for a prepared review, listening on `addr`, reporting server errors to `events`.
    pub fn new(p: Prepared, cfg: &ServeConfig, addr: SocketAddr, events: Arc<dyn Events + Send + Sync>) -> App {
        let port = addr.port();
        let hosts = addr.ip().is_loopback().then(|| {
            let mut h = vec![format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("[::1]:{port}"), format!("{addr}")];
            if port == 80 {
                h.extend(["127.0.0.1".into(), "localhost".into(), "[::1]".into()]);
            }
            // the name --bind was given (resolved to this loopback address), as the user will type it
            if let Some(name) = &cfg.bind_name {
                h.push(format!("{name}:{port}"));
                if port == 80 {
                    h.push(name.clone());
                }
            }
            h
        });
        let page = render_page(&p.set, &cfg.reviewer);
        App {
            set: p.set,
            store: Mutex::new(p.store),
            images: p.images,
            terms: p.terms,
            reviewer: cfg.reviewer.clone(),
            auth: Auth { token: cfg.token.clone(), cookie: format!("conceptree_review_{port}"), hosts },
            page,
            events,
        }
    }
}

fn render_page(set: &ReviewSet, reviewer: &str) -> String {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.add_template("review.html", PAGE).expect("the review page template parses");
    let ctx = minijinja::context! {
        reviewer => reviewer,
        n => set.items.len(),
        sets => if set.meta.blind == BlindMode::Sets { set.models.len() } else { 1 },
        blind => set.meta.blind.as_str(),
        truth => set.has_truth(),
    };
    env.get_template("review.html").and_then(|t| t.render(ctx)).unwrap_or_else(|e| panic!("the review page template failed: {e:#}"))
}

/// An error answer: status and message, sent as `{"error": message}`; for a server error also
/// the error with its causes, for the server's own report ([`report_faults`]).
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub fault: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), fault: None }
    }
}

/// A server error's full report, carried from the answer that hides it to [`report_faults`].
#[derive(Debug, Clone)]
struct Fault(String);

impl From<ReviewError> for ApiError {
    fn from(e: ReviewError) -> ApiError {
        let status = match &e {
            ReviewError::UnknownImage { .. } | ReviewError::UnknownTerm { .. } => StatusCode::NOT_FOUND,
            ReviewError::NotPredicted { .. } | ReviewError::UnknownCui { .. } | ReviewError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ReviewError::ReusedRequest { .. } => StatusCode::CONFLICT,
            e if e.is_bad_input() => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let fault = (status == StatusCode::INTERNAL_SERVER_ERROR).then(|| crate::classify::report_chain(&e));
        ApiError { status, message: e.to_string(), fault }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(serde_json::json!({ "error": self.message }))).into_response();
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(fault) = self.fault {
            r.extensions_mut().insert(Fault(fault));
        }
        r
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// The router of the app (every route behind the guard and the body limit).
pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/static/review.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT) }))
        .route("/static/review.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }))
        .route("/api/state", get(state))
        .route("/api/items/{position}", get(item))
        .route("/api/items/{position}/truth", post(truth))
        .route("/api/images/{id}", get(image))
        .route("/api/search", get(search))
        .route("/api/verdict", post(verdict))
        .route("/api/missing", post(add_missing))
        .route("/api/missing/remove", post(remove_missing))
        .route("/api/done", post(done))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such page") })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn_with_state(app.clone(), report_faults))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

/// Every error answer as JSON `{"error": ...}`, like the handlers' own: axum's built-in answers
/// (405 for a method a route does not take, 413 for a body over [`BODY_LIMIT`], 400 for a path
/// or query it cannot parse) come as plain text or with an empty body. (A 405's `Allow` header
/// is added around this layer, by the route.)
async fn json_errors(req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let r = next.run(req).await;
    let status = r.status();
    let is_json = r.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return r;
    }
    let text = axum::body::to_bytes(r.into_body(), 4096).await.map(|b| String::from_utf8_lossy(&b).trim().to_string()).unwrap_or_default();
    let message = match status {
        StatusCode::METHOD_NOT_ALLOWED => format!("{method} is not allowed on {} (see the Allow header)", crate::cui::excerpt(&path, 80)),
        StatusCode::PAYLOAD_TOO_LARGE => format!("the request body is larger than {BODY_LIMIT} bytes"),
        _ if !text.is_empty() => crate::cui::excerpt(&text, 200),
        _ => status.canonical_reason().unwrap_or("error").to_string(),
    };
    ApiError::new(status, message).into_response()
}

/// Tell the app's sink about every server error an answer carries (the browser sees only its
/// message).
async fn report_faults(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let r = next.run(req).await;
    if let Some(Fault(chain)) = r.extensions().get::<Fault>() {
        app.events.emit(Event::ServerError(chain.clone()));
    }
    r
}

/// Equal in constant time (for the token).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn presented_token<'a>(headers: &'a HeaderMap, cookie: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    if let Some(t) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")) {
        out.push(t.trim());
    }
    for h in headers.get_all(header::COOKIE) {
        if let Ok(v) = h.to_str() {
            for part in v.split(';') {
                if let Some((k, val)) = part.trim().split_once('=') {
                    if k == cookie {
                        out.push(val);
                    }
                }
            }
        }
    }
    out
}

/// Host, origin and token checks, then security headers on every answer.
async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
    if let Some(hosts) = &app.auth.hosts {
        if !hosts.iter().any(|h| h.eq_ignore_ascii_case(&host)) {
            return ApiError::new(StatusCode::MISDIRECTED_REQUEST, format!("unexpected Host '{}': open the address the server printed", crate::cui::excerpt(&host, crate::cui::EXCERPT))).into_response();
        }
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            let ok = origin.to_str().is_ok_and(|o| o.eq_ignore_ascii_case(&format!("http://{host}")));
            if !ok {
                return ApiError::new(StatusCode::FORBIDDEN, "cross-origin requests are refused").into_response();
            }
        }
    }
    if let Some(token) = &app.auth.token {
        let ok = presented_token(req.headers(), &app.auth.cookie).iter().any(|t| same(t, token));
        if !ok {
            let from_query = req.uri().query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token="))).is_some_and(|t| same(t, token));
            if req.uri().path() == "/" && *req.method() == Method::GET && from_query {
                // trade the token in the address for a cookie, and drop it from the address bar
                let cookie = format!("{}={token}; HttpOnly; SameSite=Strict; Path=/", app.auth.cookie);
                let mut r = StatusCode::SEE_OTHER.into_response();
                r.headers_mut().insert(header::LOCATION, HeaderValue::from_static("/"));
                r.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("tokens are header-safe"));
                return r;
            }
            return ApiError::new(StatusCode::UNAUTHORIZED, "this server needs its token: open the address it printed (with ?token=...) or send Authorization: Bearer <token>").into_response();
        }
    }
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'none'"),
    );
    r
}

/// Runs `f` on the store in a blocking thread.
async fn with_store<T: Send + 'static>(app: &Arc<App>, f: impl FnOnce(&App, &mut Store) -> Result<T, ReviewError> + Send + 'static) -> Result<T, ApiError> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || {
        // a panic while holding the lock rolled its transaction back: the store is still sound
        let mut store = app.store.lock().unwrap_or_else(|p| p.into_inner());
        f(&app, &mut store)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("internal error: {e}")))?
    .map_err(ApiError::from)
}

/// A JSON body of type `T` (content type checked; unknown fields refused).
fn body<T: DeserializeOwned>(headers: &HeaderMap, bytes: &Bytes) -> Result<T, ApiError> {
    let json = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "send the body as Content-Type: application/json"));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("bad JSON body: {}", crate::cui::excerpt(&e.to_string(), 160))))
}

fn invalid(field: &'static str, message: impl Into<String>) -> ApiError {
    ReviewError::Invalid { field, message: message.into() }.into()
}

/// The image of a request, which must be in the review.
fn known_image(app: &App, id: &str) -> Result<(), ApiError> {
    if app.set.item(id).is_none() {
        return Err(ReviewError::UnknownImage { id: crate::cui::excerpt(id, crate::cui::EXCERPT) }.into());
    }
    Ok(())
}

fn request_id(r: Option<String>) -> Result<String, ApiError> {
    match r {
        None => Ok(server_request_id()),
        Some(r) if (1..=64).contains(&r.len()) && r.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')) => Ok(r),
        Some(_) => Err(invalid("request_id", "1 to 64 characters from A-Z a-z 0-9 - _ . :")),
    }
}

async fn page(State(app): State<Arc<App>>) -> Response {
    let mut r = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], app.page.clone()).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[derive(Serialize)]
struct StateView {
    reviewer: String,
    n: usize,
    done: usize,
    /// First image not done (review order), if any.
    next: Option<usize>,
    blind: BlindMode,
    sets: usize,
    truth: bool,
}

async fn state(State(app): State<Arc<App>>) -> ApiResult<StateView> {
    let progress = with_store(&app, |app, s| s.progress(&app.reviewer)).await?;
    let sets = if app.set.meta.blind == BlindMode::Sets { app.set.models.len() } else { 1 };
    Ok(Json(StateView { reviewer: app.reviewer.clone(), n: app.set.items.len(), done: progress.done, next: progress.next, blind: app.set.meta.blind, sets, truth: app.set.has_truth() }))
}

#[derive(Serialize)]
struct ConceptView {
    cui: String,
    name: String,
    score: Option<f32>,
}

#[derive(Serialize)]
struct GroupView {
    level: String,
    concepts: Vec<ConceptView>,
}

#[derive(Serialize)]
struct SetView {
    label: String,
    groups: Vec<GroupView>,
}

#[derive(Serialize)]
struct TermView {
    term: i64,
    cui: Option<String>,
    name: String,
    level: Option<String>,
}

#[derive(Serialize)]
struct ItemView {
    position: usize,
    n: usize,
    id: String,
    sets: Vec<SetView>,
    verdicts: BTreeMap<String, Verdict>,
    missing: Vec<TermView>,
    done: bool,
    truth_shown: bool,
}

/// A set of concepts grouped by level ([`crate::ontology::Level::ALL`] order, then no level),
/// by name within a level.
fn grouped(set: &ReviewSet, concepts: Vec<(String, Option<f32>)>) -> Vec<GroupView> {
    let mut groups: BTreeMap<usize, GroupView> = BTreeMap::new();
    for (cui, score) in concepts {
        let level = set.level(&cui);
        let rank = level.map_or(usize::MAX, |l| crate::ontology::Level::ALL.iter().position(|x| *x == l).unwrap_or(usize::MAX));
        let g = groups.entry(rank).or_insert_with(|| GroupView { level: level.map_or("no level".to_string(), |l| l.as_str().to_string()), concepts: vec![] });
        g.concepts.push(ConceptView { name: set.name(&cui), cui, score });
    }
    let mut out: Vec<GroupView> = groups.into_values().collect();
    for g in &mut out {
        g.concepts.sort_by(|a, b| a.name.to_lowercase().cmp(&b.name.to_lowercase()).then(a.cui.cmp(&b.cui)));
    }
    out
}

fn position(app: &App, raw: &str) -> Result<usize, ApiError> {
    let n = app.set.items.len();
    match raw.parse::<usize>() {
        Ok(p) if p < n => Ok(p),
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, format!("no image at position '{}' (0 to {})", crate::cui::excerpt(raw, 20), n.saturating_sub(1)))),
    }
}

async fn item(State(app): State<Arc<App>>, UrlPath(raw): UrlPath<String>) -> ApiResult<ItemView> {
    let p = position(&app, &raw)?;
    let id = app.set.items[p].id.clone();
    let st = with_store(&app, move |app, s| s.image_state(&app.reviewer, &id)).await?;
    let it = &app.set.items[p];
    let sets = match app.set.meta.blind {
        BlindMode::Sets => it
            .shown
            .iter()
            .enumerate()
            .map(|(k, &m)| SetView { label: format!("Set {} of {}", k + 1, it.shown.len()), groups: grouped(&app.set, it.predicted[m].iter().map(|(c, s)| (c.clone(), *s)).collect()) })
            .collect(),
        // the union, unattributed: no scores (they would tell the models apart)
        BlindMode::Union => vec![SetView { label: "Predicted concepts".into(), groups: grouped(&app.set, it.concepts().into_iter().map(|c| (c.to_string(), None)).collect()) }],
    };
    let missing = st.missing.into_iter().map(|m| TermView { term: m.term, cui: m.cui, name: m.name, level: m.level.map(|l| l.as_str().to_string()) }).collect();
    Ok(Json(ItemView { position: p, n: app.set.items.len(), id: it.id.clone(), sets, verdicts: st.verdicts, missing, done: st.done, truth_shown: st.truth_shown }))
}

#[derive(Serialize)]
struct TruthView {
    concepts: Vec<ConceptView>,
}

async fn truth(State(app): State<Arc<App>>, UrlPath(raw): UrlPath<String>) -> ApiResult<TruthView> {
    if !app.set.has_truth() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "this review was made without ground truth"));
    }
    let p = position(&app, &raw)?;
    let id = app.set.items[p].id.clone();
    with_store(&app, move |app, s| s.apply(&Action { request_id: server_request_id(), reviewer: app.reviewer.clone(), image: id, kind: ActionKind::ShowTruth })).await?;
    let it = &app.set.items[p];
    let mut concepts: Vec<ConceptView> = it.truth.iter().map(|c| ConceptView { cui: c.clone(), name: app.set.name(c), score: None }).collect();
    concepts.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(TruthView { concepts }))
}

async fn image(State(app): State<Arc<App>>, UrlPath(id): UrlPath<String>) -> Result<Response, ApiError> {
    let path = app.images.get(&id).ok_or_else(|| ApiError::from(ReviewError::UnknownImage { id: crate::cui::excerpt(&id, crate::cui::EXCERPT) }))?;
    let bytes = tokio::fs::read(path).await.map_err(|e| ApiError::from(ReviewError::Read { path: path.clone(), source: e }))?;
    let png = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("png"));
    let mut r = ([(header::CONTENT_TYPE, if png { "image/png" } else { "image/jpeg" })], bytes).into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=3600"));
    Ok(r)
}

#[derive(Serialize)]
struct SearchView {
    query: String,
    results: Vec<Hit>,
}

async fn search(State(app): State<Arc<App>>, Query(q): Query<HashMap<String, String>>) -> ApiResult<SearchView> {
    let query = q.get("q").map(|s| s.trim().to_string()).unwrap_or_default();
    if query.is_empty() || query.chars().count() > MAX_QUERY {
        return Err(invalid("q", format!("1 to {MAX_QUERY} characters")));
    }
    let limit = match q.get("limit") {
        None => 12,
        Some(l) => l.parse::<usize>().ok().filter(|l| (1..=MAX_RESULTS).contains(l)).ok_or_else(|| invalid("limit", format!("a number from 1 to {MAX_RESULTS}")))?,
    };
    let results = app.terms.search(&query, limit);
    Ok(Json(SearchView { query, results }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerdictBody {
    image: String,
    cui: String,
    verdict: Option<String>,
    request_id: Option<String>,
}

async fn apply(app: &Arc<App>, request_id: String, image: String, kind: ActionKind) -> ApiResult<Ack> {
    known_image(app, &image)?;
    let ack = with_store(app, move |app, s| s.apply(&Action { request_id, reviewer: app.reviewer.clone(), image, kind })).await?;
    Ok(Json(ack))
}

async fn verdict(State(app): State<Arc<App>>, headers: HeaderMap, bytes: Bytes) -> ApiResult<Ack> {
    let b: VerdictBody = body(&headers, &bytes)?;
    let cui = crate::cui::parse_cui(b.cui.trim()).ok_or_else(|| invalid("cui", format!("'{}' is not a UMLS CUI (C and 7 digits)", crate::cui::excerpt(&b.cui, crate::cui::EXCERPT))))?;
    let verdict = match b.verdict.as_deref() {
        None => None,
        Some(v) => Some(Verdict::parse(v).ok_or_else(|| invalid("verdict", format!("'{}' is not one of correct, wrong, unsure (or null to clear)", crate::cui::excerpt(v, 20))))?),
    };
    let rid = request_id(b.request_id)?;
    apply(&app, rid, b.image, ActionKind::Verdict { cui, verdict }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MissingBody {
    image: String,
    cui: Option<String>,
    text: Option<String>,
    request_id: Option<String>,
}

async fn add_missing(State(app): State<Arc<App>>, headers: HeaderMap, bytes: Bytes) -> ApiResult<Ack> {
    let b: MissingBody = body(&headers, &bytes)?;
    let kind = match (b.cui, b.text) {
        (Some(c), None) => {
            let cui = crate::cui::parse_cui(c.trim()).ok_or_else(|| invalid("cui", format!("'{}' is not a UMLS CUI (C and 7 digits)", crate::cui::excerpt(&c, crate::cui::EXCERPT))))?;
            let (name, level) = app.terms.get(&cui).ok_or_else(|| ApiError::from(ReviewError::UnknownCui { cui: cui.clone() }))?;
            ActionKind::AddMissing { name: name.to_string(), level, cui: Some(cui) }
        }
        (None, Some(t)) => {
            let t = t.trim().to_string();
            if t.is_empty() || t.chars().count() > MAX_TERM || t.chars().any(char::is_control) {
                return Err(invalid("text", format!("1 to {MAX_TERM} characters, no control characters")));
            }
            ActionKind::AddMissing { cui: None, name: t, level: None }
        }
        _ => return Err(invalid("cui", "give either a concept (cui) or free text (text)")),
    };
    let rid = request_id(b.request_id)?;
    apply(&app, rid, b.image, kind).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveBody {
    image: String,
    term: i64,
    request_id: Option<String>,
}

async fn remove_missing(State(app): State<Arc<App>>, headers: HeaderMap, bytes: Bytes) -> ApiResult<Ack> {
    let b: RemoveBody = body(&headers, &bytes)?;
    let rid = request_id(b.request_id)?;
    apply(&app, rid, b.image, ActionKind::RemoveMissing { term: b.term }).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DoneBody {
    image: String,
    request_id: Option<String>,
}

async fn done(State(app): State<Arc<App>>, headers: HeaderMap, bytes: Bytes) -> ApiResult<Ack> {
    let b: DoneBody = body(&headers, &bytes)?;
    let rid = request_id(b.request_id)?;
    apply(&app, rid, b.image, ActionKind::Done).await
}

/// Where the server listens, once it does.
#[derive(Debug, Clone)]
pub struct Ready {
    pub addr: SocketAddr,
    /// The address to open on this machine (with `?token=` when there is one).
    pub url: String,
    /// Listening on every interface: the address to open from another machine, with a
    /// placeholder for this machine's address ([`urls`]).
    pub remote_url: Option<String>,
    pub images: usize,
    pub models: usize,
    pub done: usize,
}

/// What a server run did.
#[derive(Debug, Clone)]
pub struct Served {
    /// Actions acknowledged in this run.
    pub actions: usize,
    /// Actions in the database.
    pub total: usize,
}

/// Registers the Ctrl-C and SIGTERM handlers now and returns the future that waits for either.
/// Registering before the address is announced matters: a signal sent as soon as a client has read
/// the address must stop the server cleanly, not meet the default action and kill it (tokio's
/// `ctrl_c()`, or a signal stream created inside the shutdown future, registers only when first
/// polled, which can be after the first request is answered on a loaded machine).
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {},
                _ = terminate.recv() => {},
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// The addresses to open for a server listening on `local`: one that works on this machine, and,
/// when it listens on every interface (`0.0.0.0`, `::`), the form of the one to open from another
/// machine (whose host part only the user knows: this machine's name or address on their network).
pub(crate) fn urls(local: SocketAddr, token: Option<&str>) -> (String, Option<String>) {
    let query = token.map(|t| format!("?token={t}")).unwrap_or_default();
    let port = local.port();
    if local.ip().is_unspecified() {
        let here: std::net::IpAddr = if local.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() };
        (format!("http://{}/{query}", SocketAddr::new(here, port)), Some(format!("http://<this machine's address>:{port}/{query}")))
    } else {
        (format!("http://{local}/{query}"), None)
    }
}

/// Binds `cfg.bind:cfg.port`, calls `ready` with the address, and serves until Ctrl-C or SIGTERM;
/// requests in flight are finished before it returns.
pub fn serve(p: Prepared, cfg: &ServeConfig, events: Arc<dyn Events + Send + Sync>, ready: impl FnOnce(&Ready)) -> Result<Served, ReviewError> {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).max_blocking_threads(16).enable_all().build().map_err(ReviewError::Serve)?;
    rt.block_on(async move {
        let addr = SocketAddr::new(cfg.bind, cfg.port);
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| ReviewError::Bind { addr, source })?;
        let local = listener.local_addr().map_err(ReviewError::Serve)?;
        let before = p.store.event_count()?;
        let done = p.store.progress(&cfg.reviewer)?.done;
        let (images, models) = (p.set.items.len(), p.set.models.len());
        let app = Arc::new(App::new(p, cfg, local, events));
        let (url, remote_url) = urls(local, cfg.token.as_deref());
        let shutdown = shutdown_signal().map_err(ReviewError::Serve)?;
        ready(&Ready { addr: local, url, remote_url, images, models, done });
        axum::serve(listener, router(app.clone())).with_graceful_shutdown(shutdown).await.map_err(ReviewError::Serve)?;
        let total = app.store.lock().unwrap_or_else(|p| p.into_inner()).event_count()?;
        Ok(Served { actions: total - before, total })
    })
}

#[cfg(test)]
mod tests {
    use super::super::testdata::*;
    use super::super::{prepare, ServeConfig};
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    fn app_with(cfg: &ServeConfig, port: u16) -> Arc<App> {
        let p = prepare(cfg).unwrap();
        Arc::new(App::new(p, cfg, SocketAddr::new(cfg.bind, port), Arc::new(crate::events::Silent)))
    }

    fn setup(f: impl FnOnce(&mut ServeConfig)) -> (tempfile::TempDir, Arc<App>) {
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = files(tmp.path());
        cfg.reviewer = "ann".into();
        f(&mut cfg);
        let app = app_with(&cfg, 8123);
        (tmp, app)
    }

    const HOST: &str = "127.0.0.1:8123";

    async fn call(app: &Arc<App>, req: axum::http::Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
        let r = router(app.clone()).oneshot(req).await.unwrap();
        let (parts, body) = r.into_parts();
        (parts.status, parts.headers, axum::body::to_bytes(body, 1 << 24).await.unwrap().to_vec())
    }

    fn get(uri: &str) -> axum::http::Request<Body> {
        axum::http::Request::get(uri).header("host", HOST).body(Body::empty()).unwrap()
    }

    fn post(uri: &str, json: serde_json::Value) -> axum::http::Request<Body> {
        axum::http::Request::post(uri).header("host", HOST).header("content-type", "application/json").body(Body::from(json.to_string())).unwrap()
    }

    async fn json(app: &Arc<App>, req: axum::http::Request<Body>) -> (StatusCode, serde_json::Value) {
        let (s, _, b) = call(app, req).await;
        (s, serde_json::from_slice(&b).unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&b).into_owned())))
    }

    #[tokio::test]
    async fn page_state_item_and_image() {
        let (_tmp, app) = setup(|_| {});
        let (s, h, b) = call(&app, get("/")).await;
        assert_eq!(s, StatusCode::OK);
        let page = String::from_utf8(b).unwrap();
        assert!(page.contains("/static/review.js") && page.contains("ann"));
        assert!(h[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("script-src 'self'"));
        assert_eq!(call(&app, get("/static/review.js")).await.0, StatusCode::OK);
        let (s, st) = json(&app, get("/api/state")).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!((st["n"].as_u64(), st["done"].as_u64(), st["next"].as_u64(), st["sets"].as_u64()), (Some(6), Some(0), Some(0), Some(2)));
        let (s, it) = json(&app, get("/api/items/0")).await;
        assert_eq!(s, StatusCode::OK, "{it}");
        let id = it["id"].as_str().unwrap().to_string();
        assert_eq!(it["sets"].as_array().unwrap().len(), 2);
        assert_eq!(it["sets"][0]["label"], "Set 1 of 2");
        // blinding: no model name or file anywhere in what the reviewer's browser gets
        let text = it.to_string();
        assert!(!text.contains("flat") && !text.contains("hier") && !text.contains(".csv"), "{text}");
        let (s, h, b) = call(&app, get(&format!("/api/images/{id}"))).await;
        assert_eq!((s, &h[header::CONTENT_TYPE]), (StatusCode::OK, &HeaderValue::from_static("image/png")));
        assert!(b.starts_with(b"\x89PNG"));
        for bad in ["/api/items/6", "/api/items/-1", "/api/items/x", "/api/images/nope", "/api/images/..%2Fflat.csv", "/api/images/%2Fetc%2Fpasswd", "/nope"] {
            let (s, body) = json(&app, get(bad)).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{bad}: {body}");
            assert!(body["error"].is_string(), "{bad}: {body}");
        }
    }

    #[tokio::test]
    async fn verdicts_are_validated_and_acknowledged_after_commit() {
        let (tmp, app) = setup(|_| {});
        let v = |image: &str, cui: &str, verdict: serde_json::Value, rid: &str| post("/api/verdict", serde_json::json!({"image": image, "cui": cui, "verdict": verdict, "request_id": rid}));
        let (s, a) = json(&app, v("I0", CT, "correct".into(), "a1")).await;
        assert_eq!(s, StatusCode::OK, "{a}");
        assert_eq!(a["duplicate"], false);
        // acknowledged means stored: a second connection sees it
        let other = Store::open(&tmp.path().join("review.sqlite")).unwrap();
        assert_eq!(other.image_state("ann", "I0").unwrap().verdicts[CT], Verdict::Correct);
        let (s, a) = json(&app, v("I0", CT, "correct".into(), "a1")).await;
        assert_eq!((s, a["duplicate"].as_bool()), (StatusCode::OK, Some(true)));
        let cases: Vec<(axum::http::Request<Body>, StatusCode, &str)> = vec![
            (v("I9", CT, "correct".into(), "b1"), StatusCode::NOT_FOUND, "not in this review"),
            (v("I2", CHEST, "correct".into(), "b2"), StatusCode::UNPROCESSABLE_ENTITY, "not a concept predicted"),
            (v("I0", "C12", "correct".into(), "b3"), StatusCode::UNPROCESSABLE_ENTITY, "not a UMLS CUI"),
            (v("I0", CT, "maybe".into(), "b4"), StatusCode::UNPROCESSABLE_ENTITY, "not one of correct"),
            (v("I0", CT, "wrong".into(), "a1"), StatusCode::CONFLICT, "already used"),
            (v("I0", CT, "wrong".into(), "bad id!"), StatusCode::UNPROCESSABLE_ENTITY, "request_id"),
            (post("/api/verdict", serde_json::json!({"image": "I0", "cui": CT, "verdict": "correct", "extra": 1})), StatusCode::BAD_REQUEST, "unknown field"),
            (post("/api/verdict", serde_json::json!([1, 2])), StatusCode::BAD_REQUEST, "bad JSON"),
            (axum::http::Request::post("/api/verdict").header("host", HOST).header("content-type", "text/plain").body(Body::from("{}")).unwrap(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "application/json"),
        ];
        for (req, want, msg) in cases {
            let (s, b) = json(&app, req).await;
            assert_eq!(s, want, "{b}");
            assert!(b["error"].as_str().unwrap().contains(msg), "{b}");
        }
        // too large a body
        let big = serde_json::json!({"image": "I0", "cui": CT, "verdict": "correct", "request_id": "x".repeat(BODY_LIMIT)});
        let (s, b) = json(&app, post("/api/verdict", big)).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(b["error"].as_str().unwrap().contains(&format!("larger than {BODY_LIMIT} bytes")), "a JSON error like the others: {b}");
        // clearing
        let (s, _) = json(&app, v("I0", CT, serde_json::Value::Null, "c1")).await;
        assert_eq!(s, StatusCode::OK);
        let (_, it) = json(&app, get(&format!("/api/items/{}", app.set.item("I0").unwrap().position))).await;
        assert!(it["verdicts"].as_object().unwrap().is_empty(), "{it}");
    }

    #[tokio::test]
    async fn axums_own_error_answers_are_json_too() {
        let (_tmp, app) = setup(|_| {});
        // a route that takes another method: 405 with the Allow header and a JSON message
        let (s, h, b) = call(&app, get("/api/verdict")).await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(h[header::ALLOW], "POST");
        assert_eq!(h[header::CONTENT_TYPE], "application/json");
        let b: serde_json::Value = serde_json::from_slice(&b).unwrap_or_else(|_| panic!("not JSON: {:?}", String::from_utf8_lossy(&b)));
        assert!(b["error"].as_str().unwrap().contains("GET is not allowed on /api/verdict"), "{b}");
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY", "the security headers stay");
        let (s, b) = json(&app, axum::http::Request::delete("/api/state").header("host", HOST).body(Body::empty()).unwrap()).await;
        assert_eq!((s, b["error"].is_string()), (StatusCode::METHOD_NOT_ALLOWED, true), "{b}");
        // a path axum cannot decode (not UTF-8): its plain-text rejection, as JSON
        let (s, b) = json(&app, get("/api/images/%FF%FE")).await;
        assert!(s.is_client_error() && b["error"].is_string(), "{s}: {b}");
    }

    /// A store failure answers 500 with its message, and the error with its causes goes to the
    /// app's sink (the server prints nothing itself).
    #[tokio::test]
    async fn server_errors_are_reported_through_events() {
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = files(tmp.path());
        cfg.reviewer = "ann".into();
        let sink = Arc::new(crate::events::Collect::default());
        let app = Arc::new(App::new(prepare(&cfg).unwrap(), &cfg, SocketAddr::new(cfg.bind, 8123), sink.clone()));
        let failing = Router::new()
            .route("/boom", axum::routing::get(|| async { Err::<(), ApiError>(ReviewError::Serve(std::io::Error::other("disk on fire")).into()) }))
            .layer(middleware::from_fn_with_state(app.clone(), report_faults))
            .with_state(app);
        let r = failing.oneshot(get("/boom")).await.unwrap();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let events = sink.take();
        assert!(matches!(events.as_slice(), [Event::ServerError(chain)] if chain.contains("disk on fire")), "{events:?}");
        assert!(events[0].to_string().starts_with("error: "));
    }

    #[test]
    fn the_printed_address_is_one_that_works() {
        let tok = Some("abcdefghijklmnop0123");
        assert_eq!(urls("127.0.0.1:8123".parse().unwrap(), None), ("http://127.0.0.1:8123/".to_string(), None));
        assert_eq!(urls("10.1.2.3:8123".parse().unwrap(), tok), ("http://10.1.2.3:8123/?token=abcdefghijklmnop0123".to_string(), None));
        // every interface: 127.0.0.1 here, and this machine's address (which only the user knows) elsewhere
        let (here, remote) = urls("0.0.0.0:8123".parse().unwrap(), tok);
        assert_eq!(here, "http://127.0.0.1:8123/?token=abcdefghijklmnop0123");
        assert_eq!(remote.as_deref(), Some("http://<this machine's address>:8123/?token=abcdefghijklmnop0123"));
        assert_eq!(urls("[::]:8123".parse().unwrap(), None).0, "http://[::1]:8123/");
    }

    #[tokio::test]
    async fn missing_terms_search_done_and_truth() {
        let (_tmp, app) = setup(|_| {});
        let (s, r) = json(&app, get("/api/search?q=pneumo&limit=5")).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(r["results"][0]["cui"], PNEUMONIA);
        for bad in ["/api/search", "/api/search?q=", "/api/search?q=a&limit=0", "/api/search?q=a&limit=x", &format!("/api/search?q={}", "a".repeat(101))] {
            assert_eq!(json(&app, get(bad)).await.0, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        }
        let (s, a) = json(&app, post("/api/missing", serde_json::json!({"image": "I2", "cui": PNEUMONIA, "request_id": "m1"}))).await;
        assert_eq!(s, StatusCode::OK, "{a}");
        let term = a["term"].as_i64().unwrap();
        let (s, _) = json(&app, post("/api/missing", serde_json::json!({"image": "I2", "text": "  rib fracture  "}))).await;
        assert_eq!(s, StatusCode::OK);
        for (b, want) in [
            (serde_json::json!({"image": "I2", "cui": "C9999999"}), StatusCode::UNPROCESSABLE_ENTITY),
            (serde_json::json!({"image": "I2"}), StatusCode::UNPROCESSABLE_ENTITY),
            (serde_json::json!({"image": "I2", "cui": PNEUMONIA, "text": "x"}), StatusCode::UNPROCESSABLE_ENTITY),
            (serde_json::json!({"image": "I2", "text": "   "}), StatusCode::UNPROCESSABLE_ENTITY),
            (serde_json::json!({"image": "I2", "text": "a\u{0}b"}), StatusCode::UNPROCESSABLE_ENTITY),
            (serde_json::json!({"image": "I9", "text": "x"}), StatusCode::NOT_FOUND),
        ] {
            assert_eq!(json(&app, post("/api/missing", b.clone())).await.0, want, "{b}");
        }
        let pos = app.set.item("I2").unwrap().position;
        let (_, it) = json(&app, get(&format!("/api/items/{pos}"))).await;
        let names: Vec<&str> = it["missing"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Pneumonia", "rib fracture"]);
        assert_eq!(json(&app, post("/api/missing/remove", serde_json::json!({"image": "I2", "term": term}))).await.0, StatusCode::OK);
        assert_eq!(json(&app, post("/api/missing/remove", serde_json::json!({"image": "I2", "term": term}))).await.0, StatusCode::NOT_FOUND);
        assert_eq!(json(&app, post("/api/done", serde_json::json!({"image": "I2"}))).await.0, StatusCode::OK);
        let (_, st) = json(&app, get("/api/state")).await;
        assert_eq!(st["done"], 1);
        let (s, t) = json(&app, post(&format!("/api/items/{pos}/truth"), serde_json::json!({}))).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(t["concepts"][0]["name"], "Magnetic Resonance Imaging");
        let (_, it) = json(&app, get(&format!("/api/items/{pos}"))).await;
        assert_eq!((it["done"].as_bool(), it["truth_shown"].as_bool()), (Some(true), Some(true)));
    }

    #[tokio::test]
    async fn union_mode_hides_scores_and_models() {
        let (_tmp, app) = setup(|c| c.blind = Some(BlindMode::Union));
        let pos = app.set.item("I0").unwrap().position;
        let (_, it) = json(&app, get(&format!("/api/items/{pos}"))).await;
        assert_eq!(it["sets"].as_array().unwrap().len(), 1);
        let cuis: Vec<&str> = it["sets"][0]["groups"].as_array().unwrap().iter().flat_map(|g| g["concepts"].as_array().unwrap().iter().map(|c| c["cui"].as_str().unwrap())).collect();
        assert_eq!(cuis.len(), 3, "CT, chest and axial once each: {cuis:?}");
        assert_eq!(cuis[0], CT, "modality first");
    }

    #[tokio::test]
    async fn host_origin_and_token_are_enforced() {
        let (_tmp, app) = setup(|_| {});
        let req = |host: &str| axum::http::Request::get("/api/state").header("host", host).body(Body::empty()).unwrap();
        assert_eq!(call(&app, req("localhost:8123")).await.0, StatusCode::OK);
        assert_eq!(call(&app, req("evil.example:8123")).await.0, StatusCode::MISDIRECTED_REQUEST, "DNS rebinding");
        // a loopback host name given to --bind is accepted as Host too
        let (_tmp3, named) = setup(|c| c.bind_name = Some("ws-loopback".into()));
        assert_eq!(call(&named, req("ws-loopback:8123")).await.0, StatusCode::OK);
        let cross = axum::http::Request::post("/api/done").header("host", HOST).header("origin", "http://evil.example").header("content-type", "application/json").body(Body::from(r#"{"image":"I0"}"#)).unwrap();
        assert_eq!(call(&app, cross).await.0, StatusCode::FORBIDDEN);
        let same_origin = axum::http::Request::post("/api/done").header("host", HOST).header("origin", "http://127.0.0.1:8123").header("content-type", "application/json").body(Body::from(r#"{"image":"I0"}"#)).unwrap();
        assert_eq!(call(&app, same_origin).await.0, StatusCode::OK);

        let token = "abcdefghijklmnop0123";
        let (_tmp2, app) = setup(|c| {
            c.bind = "0.0.0.0".parse().unwrap();
            c.token = Some(token.into());
        });
        let any_host = |uri: &str| axum::http::Request::get(uri).header("host", "radiology-ws-7:8123");
        assert_eq!(call(&app, any_host("/api/state").body(Body::empty()).unwrap()).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(call(&app, any_host("/api/images/I0").body(Body::empty()).unwrap()).await.0, StatusCode::UNAUTHORIZED, "images need the token too");
        assert_eq!(call(&app, any_host("/static/review.js").body(Body::empty()).unwrap()).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(call(&app, any_host("/api/state").header("authorization", "Bearer abcdefghijklmnop0124").body(Body::empty()).unwrap()).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(call(&app, any_host("/api/state").header("authorization", format!("Bearer {token}")).body(Body::empty()).unwrap()).await.0, StatusCode::OK);
        let (s, h, _) = call(&app, any_host(&format!("/?token={token}")).body(Body::empty()).unwrap()).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        let cookie = h[header::SET_COOKIE].to_str().unwrap().to_string();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
        let pair = cookie.split(';').next().unwrap().to_string();
        assert_eq!(call(&app, any_host("/api/images/I0").header("cookie", format!("other=1; {pair}")).body(Body::empty()).unwrap()).await.0, StatusCode::OK);
        assert_eq!(call(&app, any_host("/api/state?token=abcdefghijklmnop0123").body(Body::empty()).unwrap()).await.0, StatusCode::UNAUTHORIZED, "the query token only opens the page");
    }
}
