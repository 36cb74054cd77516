//! The dashboard's HTML, in maud: every interpolation is escaped unless it says otherwise (none
//! here does), and no markup carries an inline script or style, so the strict CSP holds. No view
//! takes a secret value: there is nothing to leak.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};
use time::OffsetDateTime;

use crate::records::{AuditRow, EnvironmentRow, KeyRow, RunnerRow, SecretMeta, SecretVersion};

/// What every signed-in page shows in its header.
pub struct Chrome<'a> {
    pub key_id: &'a str,
    pub csrf: &'a str,
    pub admin: bool,
    /// The navigation entry of this page.
    pub active: &'static str,
}

/// A message shown at the top of a page after an action.
pub enum Flash {
    Done(String),
    Error(String),
}

pub fn time(t: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_default()
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · runseal" }
            link rel="stylesheet" href="/assets/style.css";
            link rel="icon" href="/assets/icon.svg" type="image/svg+xml";
        }
    }
}

fn flash(f: Option<&Flash>) -> Markup {
    html! {
        @match f {
            Some(Flash::Done(m)) => p.flash.done role="status" { (m) },
            Some(Flash::Error(m)) => p.flash.error role="alert" { (m) },
            None => {},
        }
    }
}

/// A whole signed-in page.
pub fn page(c: &Chrome<'_>, title: &str, f: Option<&Flash>, content: Markup) -> Html<String> {
    let nav: &[(&str, &str, bool)] = &[
        ("environments", "/environments", true),
        ("runners", "/runners", true),
        ("audit", "/audit", c.admin),
        ("keys", "/keys", c.admin),
    ];
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                (head(title))
                body {
                    header.top {
                        a.brand href="/" { "runseal" }
                        nav aria-label="Main" {
                            @for (name, href, shown) in nav {
                                @if *shown {
                                    a href=(href) aria-current=[(c.active == *name).then_some("page")] { (capitalise(name)) }
                                }
                            }
                        }
                        form.signout method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(c.csrf);
                            span.who title="The key this session acts as" { (c.key_id) }
                            button type="submit" { "Sign out" }
                        }
                    }
                    main {
                        h1 { (title) }
                        (flash(f))
                        (content)
                    }
                }
            }
        }
        .into_string(),
    )
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// The sign-in page (no session).
pub fn login(csrf: &str, error: Option<&str>) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                (head("Sign in"))
                body.signin {
                    main.card {
                        h1 { "Sign in to runseal" }
                        @if let Some(e) = error { p.flash.error role="alert" { (e) } }
                        form method="post" action="/login" {
                            input type="hidden" name="csrf" value=(csrf);
                            label for="key" { "Key" }
                            input #key type="password" name="key" required autocomplete="current-password" autofocus
                                placeholder="rk_…:…" aria-describedby="key-help";
                            p #key-help.help { "A runseal key as " code { "KEY_ID:KEY_SECRET" } " (" code { "runseal keys create" } "). Runner tokens cannot sign in." }
                            button.primary type="submit" { "Sign in" }
                        }
                    }
                }
            }
        }
        .into_string(),
    )
}

/// A bare page for a refusal before or outside a session (403, 413, 400, 500).
pub fn bare(status: StatusCode, title: &str, message: &str) -> Response {
    let body = Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                (head(title))
                body.signin {
                    main.card {
                        h1 { (title) }
                        p.flash.error role="alert" { (message) }
                        p { a href="/" { "Back to the dashboard" } }
                    }
                }
            }
        }
        .into_string(),
    );
    (status, body).into_response()
}

pub fn forbidden(message: &str) -> Response {
    bare(StatusCode::FORBIDDEN, "Not allowed", message)
}

pub fn too_large(limit: usize) -> Response {
    bare(
        StatusCode::PAYLOAD_TOO_LARGE,
        "Too large",
        &format!(
            "The form was larger than {limit} bytes, the most the dashboard accepts (the largest environment the server allows, encoded). Nothing was stored: send fewer or smaller values at once."
        ),
    )
}

fn env_dropdown(envs: &[EnvironmentRow], current: &str) -> Markup {
    html! {
        form.switch method="get" action="/switch" {
            label for="env" { "Environment" }
            select #env name="env" {
                @for e in envs {
                    option value=(e.name) selected[e.name == current] { (e.name) }
                }
            }
            button type="submit" { "Show" }
        }
    }
}

/// `/environments`.
pub fn environments(
    c: &Chrome<'_>,
    f: Option<&Flash>,
    envs: &[(EnvironmentRow, Option<OffsetDateTime>, Option<usize>)],
) -> Html<String> {
    let content = html! {
        table {
            thead { tr { th { "Environment" } th.num { "Secrets" } th.num { "Revision" } th { "Last change" } th.num { "Stale runners" } @if c.admin { th { span.sr { "Actions" } } } } }
            tbody {
                @for (e, changed, stale) in envs {
                    tr {
                        td { a href={"/environments/" (e.name)} { (e.name) } }
                        td.num { (e.secret_count) }
                        td.num { (e.revision) }
                        td { (changed.map(time).unwrap_or_else(|| "—".into())) }
                        td.num { @match stale { Some(n) => (n), None => "—" } }
                        @if c.admin {
                            td { @if e.name != crate::MAIN_ENV { a.danger href={"/environments/" (e.name) "/delete"} { "Delete…" } } }
                        }
                    }
                }
            }
        }
        @if c.admin {
            section {
                h2 { "New environment" }
                form.inline method="post" action="/environments" {
                    input type="hidden" name="csrf" value=(c.csrf);
                    label for="name" { "Name" }
                    input #name name="name" required pattern="[a-z0-9][a-z0-9-]*" maxlength="64" placeholder="staging" aria-describedby="name-help";
                    button.primary type="submit" { "Create environment" }
                    p #name-help.help { "Lower-case letters, digits and '-', starting with a letter or digit." }
                }
            }
        }
    };
    page(c, "Environments", f, content)
}

/// What the secrets page may offer this key.
pub struct SecretsView<'a> {
    pub env: &'a str,
    pub envs: &'a [EnvironmentRow],
    pub revision: u64,
    pub secrets: &'a [SecretMeta],
    pub can_write: bool,
    pub can_issue: bool,
    pub expose_by_default: bool,
}

/// `/environments/{env}`.
pub fn secrets(c: &Chrome<'_>, f: Option<&Flash>, v: &SecretsView<'_>) -> Html<String> {
    let env = v.env;
    let content = html! {
        (env_dropdown(v.envs, env))
        p.meta { "Revision " (v.revision) ". Values are write-only: they are never shown again after saving. Runners get this environment's values when they start; runners already running keep theirs." }
        @if v.secrets.is_empty() {
            p.empty { "No secrets in " (env) " yet." }
        } @else {
            table {
                thead { tr { th { "Name" } th { "Created" } th { "Updated" } th { "Exposed by default" } th { span.sr { "Actions" } } } }
                tbody {
                    @for s in v.secrets {
                        tr {
                            td { code { (s.name) } }
                            td { (time(s.created_at)) }
                            td { (time(s.updated_at)) }
                            td {
                                @let shown = s.exposed.unwrap_or(v.expose_by_default);
                                @if v.can_write {
                                    form.inline method="post" action={"/environments/" (env) "/secrets/" (s.name) "/exposure"} {
                                        input type="hidden" name="csrf" value=(c.csrf);
                                        input type="hidden" name="exposed" value=(if shown { "off" } else { "on" });
                                        span { (if shown { "Yes" } else { "No" }) @if s.exposed.is_none() { " (server default)" } }
                                        " "
                                        button.link type="submit" aria-label={(if shown { "Stop exposing " } else { "Expose " }) (s.name)} { (if shown { "Stop exposing" } else { "Expose" }) }
                                    }
                                } @else {
                                    (if shown { "Yes" } else { "No" })
                                }
                            }
                            td {
                                a href={"/environments/" (env) "/secrets/" (s.name) "/history"} aria-label={"History of " (s.name)} { "History" }
                                @if v.can_write {
                                    " "
                                    a.danger href={"/environments/" (env) "/secrets/" (s.name) "/delete"} aria-label={"Delete " (s.name)} { "Delete…" }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if v.can_write {
            section {
                h2 { "Add or update a secret" }
                form.stack method="post" action={"/environments/" (env) "/secrets"} {
                    input type="hidden" name="csrf" value=(c.csrf);
                    label for="name" { "Name" }
                    input #name name="name" maxlength="256" placeholder="API_KEY" autocomplete="off" spellcheck="false" aria-describedby="name-help";
                    p #name-help.help { "Letters, digits and '_', not starting with a digit. An existing name is overwritten." }
                    label for="value" { "Value (one line)" }
                    input #value type="password" name="value" autocomplete="new-password" spellcheck="false";
                    label for="value-multi" { "…or a multi-line value (PEM keys, certificates)" }
                    textarea #value-multi name="value" rows="4" autocomplete="off" spellcheck="false" {}
                    button.primary type="submit" { "Save secret" }
                }
                details {
                    summary { "Paste several at once (.env lines)" }
                    form.stack method="post" action={"/environments/" (env) "/secrets"} {
                        input type="hidden" name="csrf" value=(c.csrf);
                        label for="bulk" { "Lines of NAME=VALUE" }
                        textarea #bulk name="bulk" rows="8" autocomplete="off" spellcheck="false" placeholder="API_KEY=…\nDATABASE_URL=\"postgres://…\"" aria-describedby="bulk-help" {}
                        p #bulk-help.help { "dotenv syntax: # comments, optional quotes, multi-line values in quotes. $ is literal (no substitution). All lines are saved together, or none." }
                        button.primary type="submit" { "Save all" }
                    }
                }
            }
        }
        @if v.can_issue {
            section {
                h2 { "Runner token" }
                form.inline method="post" action={"/environments/" (env) "/tokens"} {
                    input type="hidden" name="csrf" value=(c.csrf);
                    label for="ttl" { "Valid for (seconds)" }
                    input #ttl name="ttl" type="number" min="1" value="600";
                    label for="uses" { "Uses" }
                    input #uses name="uses" type="number" min="1" value="1";
                    button type="submit" { "Mint runner token" }
                }
            }
        }
    };
    page(c, env, f, content)
}

/// The kept versions of one secret (never values), each with a rollback button for writers.
pub fn history(
    c: &Chrome<'_>,
    f: Option<&Flash>,
    env: &str,
    name: &str,
    versions: &[SecretVersion],
    can_write: bool,
) -> Html<String> {
    let content = html! {
        p.meta { a href={"/environments/" (env)} { "← " (env) } " · Kept versions of " code { (name) } ", newest first. Values are never shown; a rollback makes an old value current again as a new version." }
        table {
            thead { tr { th { "Version" } th { "Set" } th { "By key" } th { "Current" } @if can_write { th { span.sr { "Actions" } } } } }
            tbody {
                @for v in versions {
                    tr {
                        td { (v.version) }
                        td { (time(v.created_at)) }
                        td { @if v.created_by.is_empty() { "(before history)" } @else { code { (v.created_by) } } }
                        td { @if v.current { strong { "Current" } } }
                        @if can_write {
                            td {
                                @if !v.current {
                                    form.inline method="post" action={"/environments/" (env) "/secrets/" (name) "/rollback"} {
                                        input type="hidden" name="csrf" value=(c.csrf);
                                        input type="hidden" name="version" value=(v.version);
                                        button type="submit" aria-label={"Roll " (name) " back to version " (v.version)} { "Roll back to this version" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    page(c, &format!("History of {name}"), f, content)
}

/// A confirmation step before something that cannot be undone.
pub fn confirm(
    c: &Chrome<'_>,
    title: &str,
    what: Markup,
    action: &str,
    button: &str,
    back: &str,
) -> Html<String> {
    let content = html! {
        section.confirm {
            (what)
            form.inline method="post" action=(action) {
                input type="hidden" name="csrf" value=(c.csrf);
                input type="hidden" name="confirm" value="yes";
                button.danger type="submit" { (button) }
                " "
                a href=(back) { "Cancel" }
            }
        }
    };
    page(c, title, None, content)
}

/// A credential shown exactly once, in the response to the POST that made it.
pub fn shown_once(
    c: &Chrome<'_>,
    title: &str,
    what: &str,
    credential: &str,
    back: &str,
) -> Html<String> {
    let content = html! {
        section.once {
            p.flash.warn role="alert" { "Copy it now: " (what) " will not be shown again." }
            label for="credential" { (what) }
            input #credential.credential readonly value=(credential) spellcheck="false" autocomplete="off";
            p { a href=(back) { "Done" } }
        }
    };
    page(c, title, None, content)
}

/// `/runners`.
pub fn runners(
    c: &Chrome<'_>,
    envs: &[EnvironmentRow],
    env: Option<&str>,
    stale_only: bool,
    rows: &[RunnerRow],
) -> Html<String> {
    let content = html! {
        form.switch method="get" action="/runners" {
            label for="env" { "Environment" }
            select #env name="env" {
                @if c.admin { option value="" selected[env.is_none()] { "All" } }
                @for e in envs { option value=(e.name) selected[env == Some(e.name.as_str())] { (e.name) } }
            }
            label { input type="checkbox" name="stale" value="1" checked[stale_only]; " Stale only" }
            button type="submit" { "Show" }
        }
        @if rows.is_empty() { p.empty { "No runner starts recorded." } } @else {
            table {
                thead { tr { th { "Runner" } th { "Environment" } th.num { "Revision" } th { "Started" } th { "Credential" } th { "State" } } }
                tbody {
                    @for r in rows {
                        @let stale = r.stale;
                        tr.stale[stale] {
                            td { code { (r.record.runner_id) } }
                            td { (r.record.environment) }
                            td.num { (r.record.revision) }
                            td { (time(r.record.started_at)) }
                            td { code { (r.record.credential_id) } }
                            td { @if stale { span.badge.stale { "stale (now " (r.current_revision) ")" } } @else { span.badge { "current" } } }
                        }
                    }
                }
            }
        }
    };
    page(c, "Runners", None, content)
}

/// `/audit`.
pub fn audit(
    c: &Chrome<'_>,
    envs: &[EnvironmentRow],
    env: Option<&str>,
    action: Option<&str>,
    rows: &[AuditRow],
    next: Option<String>,
) -> Html<String> {
    let content = html! {
        form.switch method="get" action="/audit" {
            label for="env" { "Environment" }
            select #env name="env" {
                option value="" selected[env.is_none()] { "All" }
                @for e in envs { option value=(e.name) selected[env == Some(e.name.as_str())] { (e.name) } }
            }
            label for="action" { "Action" }
            input #action name="action" value=(action.unwrap_or_default()) placeholder="secrets.set" size="16";
            button type="submit" { "Filter" }
        }
        @if rows.is_empty() { p.empty { "No entries." } } @else {
            table {
                thead { tr { th { "When" } th { "Key" } th { "Action" } th { "Environment" } th { "Names" } th.num { "Revision" } th { "Via" } } }
                tbody {
                    @for a in rows {
                        tr {
                            td { (time(a.at)) }
                            td { code { (a.key_id) } }
                            td { (a.action) }
                            td { (a.environment.as_deref().unwrap_or("—")) }
                            td { (a.names.join(", ")) @if a.names_total as usize > a.names.len() { " … (" (a.names_total) " in all)" } }
                            td.num { @if let Some(r) = a.revision { (r) } }
                            td { (a.via.as_deref().unwrap_or("api")) }
                        }
                    }
                }
            }
        }
        @if let Some(next) = next { p { a href=(next) { "Older entries" } } }
    };
    page(c, "Audit log", None, content)
}

/// `/keys`.
pub fn keys(c: &Chrome<'_>, f: Option<&Flash>, keys: &[KeyRow]) -> Html<String> {
    let content = html! {
        table {
            thead { tr { th { "Key" } th { "Label" } th { "Scopes" } th { "Created" } th { "Last used" } th { "State" } th { span.sr { "Actions" } } } }
            tbody {
                @for k in keys {
                    tr {
                        td { code { (k.id) } }
                        td { (k.label) }
                        td { (k.scopes) }
                        td { (time(k.created_at)) }
                        td { (k.last_used_at.map(time).unwrap_or_else(|| "never".into())) }
                        td { @if let Some(r) = k.revoked_at { "revoked " (time(r)) } @else { "active" } }
                        td { @if k.revoked_at.is_none() { a.danger href={"/keys/" (k.id) "/revoke"} aria-label={"Revoke " (k.id)} { "Revoke…" } } }
                    }
                }
            }
        }
        section {
            h2 { "New key" }
            form.stack method="post" action="/keys" {
                input type="hidden" name="csrf" value=(c.csrf);
                label for="label" { "Label" }
                input #label name="label" maxlength="200" placeholder="CI deploy";
                label for="scopes" { "Scopes" }
                input #scopes name="scopes" required placeholder="write:staging, issue:staging" aria-describedby="scopes-help";
                p #scopes-help.help { "Comma-separated: admin, write:ENV, read:ENV, issue:ENV, snapshot:ENV, build:ENV." }
                button.primary type="submit" { "Create key" }
            }
        }
    };
    page(c, "Keys", f, content)
}
