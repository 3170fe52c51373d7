//! WebDAV property requests (RFC 4918 §9.1, §9.2) and their multistatus
//! answers.
//!
//! Ingest keeps no dead properties: PROPPATCH is parsed (a malformed body
//! is a 400) and every property in it is answered `403 Forbidden`, so a
//! client learns at once that nothing was set. PROPFIND answers the live
//! properties an encoder or a DAV client looks at.

use std::fmt::Write;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header, request::Parts};
use quick_xml::NsReader;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use tandem_store::Entry;

use super::Target;
use crate::AppState;
use crate::error::HttpError;

const DAV: &str = "DAV:";

/// A property name: namespace and local name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropName {
    pub ns: String,
    pub local: String,
}

/// What a PROPFIND body asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropFind {
    AllProp,
    PropName,
    Prop(Vec<PropName>),
}

/// A resolved element: namespace (empty when none) and local name.
fn resolved(ns: ResolveResult<'_>, local: &[u8]) -> Result<PropName, HttpError> {
    let ns = match ns {
        ResolveResult::Bound(n) => String::from_utf8_lossy(n.as_ref()).into_owned(),
        ResolveResult::Unbound => String::new(),
        ResolveResult::Unknown(p) => {
            return Err(HttpError::bad_request(format!(
                "undeclared namespace prefix {:?}",
                String::from_utf8_lossy(&p)
            )));
        }
    };
    Ok(PropName {
        ns,
        local: String::from_utf8_lossy(local).into_owned(),
    })
}

/// Walks a well-formed XML document, calling `f(depth, name)` for each
/// element start (depth 0 is the root). Any well-formedness error is a 400.
fn walk(
    body: &[u8],
    mut f: impl FnMut(usize, PropName) -> Result<(), HttpError>,
) -> Result<(), HttpError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| HttpError::bad_request("the XML body is not UTF-8"))?;
    let mut r = NsReader::from_str(text);
    r.config_mut().check_end_names = true;
    let mut depth = 0usize;
    let mut roots = 0usize;
    let bad = |e: &dyn std::fmt::Display| {
        HttpError::bad_request(format!("the XML body is malformed: {e}"))
    };
    loop {
        match r.read_resolved_event() {
            Err(e) => return Err(bad(&e)),
            Ok((ns, Event::Start(s))) => {
                if depth == 0 {
                    roots += 1;
                }
                let name = resolved(ns, s.local_name().as_ref())?;
                f(depth, name)?;
                depth += 1;
            }
            Ok((ns, Event::Empty(s))) => {
                if depth == 0 {
                    roots += 1;
                }
                let name = resolved(ns, s.local_name().as_ref())?;
                f(depth, name)?;
            }
            Ok((_, Event::End(_))) => depth = depth.saturating_sub(1),
            Ok((_, Event::Text(t))) if depth == 0 => {
                if !t.iter().all(u8::is_ascii_whitespace) {
                    return Err(bad(&"text outside the root element"));
                }
            }
            Ok((_, Event::Eof)) => break,
            Ok(_) => {}
        }
    }
    if depth != 0 || roots != 1 {
        return Err(bad(&"the document is not one complete element"));
    }
    // XML Namespaces 1.0 §2.2: a prefix may not be bound to the empty
    // name; quick-xml accepts it, so check here.
    let prefixed_empty = text.split("xmlns:").skip(1).any(|rest| {
        rest.split_once('=').is_some_and(|(_, v)| {
            v.trim_start().starts_with("\"\"") || v.trim_start().starts_with("''")
        })
    });
    if prefixed_empty {
        return Err(bad(
            &"a namespace prefix may not be bound to the empty name",
        ));
    }
    Ok(())
}

/// Parses a PROPFIND body; an empty body means `allprop` (RFC 4918 §9.1).
pub fn parse_propfind(body: &[u8]) -> Result<PropFind, HttpError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(PropFind::AllProp);
    }
    let mut kind: Option<PropFind> = None;
    let mut in_prop = false;
    let mut root_ok = false;
    walk(body, |depth, name| {
        match depth {
            0 => root_ok = name.ns == DAV && name.local == "propfind",
            1 if name.ns == DAV => {
                in_prop = name.local == "prop";
                kind = match name.local.as_str() {
                    "allprop" => Some(PropFind::AllProp),
                    "propname" => Some(PropFind::PropName),
                    "prop" => Some(PropFind::Prop(Vec::new())),
                    _ => kind.take(),
                };
            }
            2 if in_prop => {
                if let Some(PropFind::Prop(v)) = kind.as_mut() {
                    v.push(name);
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    if !root_ok {
        return Err(HttpError::bad_request(
            "the body is not a DAV:propfind element",
        ));
    }
    kind.ok_or_else(|| HttpError::bad_request("propfind needs allprop, propname or prop"))
}

/// The property names in a PROPPATCH body's `set` and `remove` blocks.
pub fn parse_proppatch(body: &[u8]) -> Result<Vec<PropName>, HttpError> {
    let mut root_ok = false;
    let mut names = Vec::new();
    let mut depth2_is_prop = false;
    walk(body, |depth, name| {
        match depth {
            0 => root_ok = name.ns == DAV && name.local == "propertyupdate",
            2 => depth2_is_prop = name.ns == DAV && name.local == "prop",
            3 if depth2_is_prop => names.push(name),
            _ => {}
        }
        Ok(())
    })?;
    if !root_ok {
        return Err(HttpError::bad_request(
            "the body is not a DAV:propertyupdate element",
        ));
    }
    Ok(names)
}

fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c => o.push(c),
        }
    }
    o
}

/// An element for property `p` with `inner` content (empty for names only).
fn element(p: &PropName, inner: &str) -> String {
    let (open, close) = if p.ns == DAV {
        (format!("D:{}", p.local), format!("D:{}", p.local))
    } else if p.ns.is_empty() {
        (format!("{} xmlns=\"\"", p.local), p.local.clone())
    } else {
        (
            format!("X:{} xmlns:X=\"{}\"", p.local, escape(&p.ns)),
            format!("X:{}", p.local),
        )
    };
    if inner.is_empty() {
        format!("<{open}/>")
    } else {
        format!("<{open}>{inner}</{close}>")
    }
}

/// The live properties of an entry, as (name, XML content).
fn live_props(entry: &Entry, name: &str) -> Vec<(&'static str, String)> {
    let mut v = Vec::new();
    match entry {
        Entry::Collection { modified, .. } => {
            v.push(("resourcetype", "<D:collection/>".to_owned()));
            v.push(("getlastmodified", httpdate::fmt_http_date(*modified)));
        }
        Entry::Object(m) => {
            v.push(("resourcetype", String::new()));
            v.push(("getcontentlength", m.size.to_string()));
            v.push(("getlastmodified", httpdate::fmt_http_date(m.modified)));
            v.push(("getetag", escape(&m.etag)));
            v.push((
                "getcontenttype",
                crate::serve::content_type(name).to_owned(),
            ));
        }
    }
    v
}

fn response_xml(out: &mut String, href: &str, entry: &Entry, name: &str, q: &PropFind) {
    let props = live_props(entry, name);
    let _ = write!(out, "<D:response><D:href>{}</D:href>", escape(href));
    let propstat = |out: &mut String, inner: &str, status: &str| {
        let _ = write!(
            out,
            "<D:propstat><D:prop>{inner}</D:prop><D:status>HTTP/1.1 {status}</D:status></D:propstat>"
        );
    };
    match q {
        PropFind::AllProp => {
            let inner: String = props.iter().map(|(n, v)| element(&dav(n), v)).collect();
            propstat(out, &inner, "200 OK");
        }
        PropFind::PropName => {
            let inner: String = props.iter().map(|(n, _)| element(&dav(n), "")).collect();
            propstat(out, &inner, "200 OK");
        }
        PropFind::Prop(wanted) => {
            let (mut found, mut missing) = (String::new(), String::new());
            for w in wanted {
                match props.iter().find(|(n, _)| w.ns == DAV && w.local == *n) {
                    Some((_, v)) => found.push_str(&element(w, v)),
                    None => missing.push_str(&element(w, "")),
                }
            }
            if !found.is_empty() {
                propstat(out, &found, "200 OK");
            }
            if !missing.is_empty() {
                propstat(out, &missing, "404 Not Found");
            }
        }
    }
    out.push_str("</D:response>");
}

fn dav(local: &str) -> PropName {
    PropName {
        ns: DAV.to_owned(),
        local: local.to_owned(),
    }
}

fn multistatus(body: String) -> Response {
    let mut r = (StatusCode::MULTI_STATUS, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    r
}

const HEAD: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\">";

pub(super) async fn propfind(
    st: &AppState,
    t: &Target,
    parts: &Parts,
    body: Bytes,
) -> Result<Response, HttpError> {
    let depth = parts
        .headers
        .get("depth")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or("infinity");
    let depth = match depth {
        "0" => 0,
        "1" => 1,
        _ => {
            // RFC 4918 §9.1: a server may refuse infinite depth.
            let mut r = (
                StatusCode::FORBIDDEN,
                "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:error xmlns:D=\"DAV:\"><D:propfind-finite-depth/></D:error>",
            )
                .into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/xml; charset=utf-8"),
            );
            return Ok(r);
        }
    };
    let q = parse_propfind(&body)?;
    let key = t.key();
    let entry = match st.store.stat(&key).await? {
        Some(e) => e,
        None => {
            return Err(HttpError::not_found(format!(
                "{} does not exist in this input",
                t.path
            )));
        }
    };
    let mut out = String::from(HEAD);
    let is_coll = matches!(entry, Entry::Collection { .. });
    response_xml(
        &mut out,
        &t.href(&t.path, is_coll),
        &entry,
        t.path.file_name().unwrap_or_default(),
        &q,
    );
    if depth == 1 && is_coll {
        for (name, child) in st.store.list(&key).await? {
            let Ok(p) = t.path.join(&name) else { continue };
            let coll = matches!(child, Entry::Collection { .. });
            response_xml(&mut out, &t.href(&p, coll), &child, &name, &q);
        }
    }
    out.push_str("</D:multistatus>\n");
    Ok(multistatus(out))
}

pub(super) async fn proppatch(
    st: &AppState,
    t: &Target,
    body: Bytes,
) -> Result<Response, HttpError> {
    let names = parse_proppatch(&body)?;
    let key = t.key();
    let entry =
        st.store.stat(&key).await?.ok_or_else(|| {
            HttpError::not_found(format!("{} does not exist in this input", t.path))
        })?;
    let is_coll = matches!(entry, Entry::Collection { .. });
    let inner: String = names.iter().map(|n| element(n, "")).collect();
    let mut out = String::from(HEAD);
    let _ = writeln!(
        out,
        "<D:response><D:href>{}</D:href><D:propstat><D:prop>{inner}</D:prop><D:status>HTTP/1.1 403 Forbidden</D:status>\
         <D:responsedescription>ingest stores no dead properties</D:responsedescription></D:propstat></D:response></D:multistatus>",
        escape(&t.href(&t.path, is_coll))
    );
    Ok(multistatus(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn propfind_bodies_parse_by_namespace_not_prefix() {
        assert_eq!(parse_propfind(b"").unwrap(), PropFind::AllProp);
        let b = br#"<?xml version="1.0"?><a:propfind xmlns:a="DAV:"><a:prop><a:getcontentlength/><x:foo xmlns:x="urn:x"/></a:prop></a:propfind>"#;
        assert_eq!(
            parse_propfind(b).unwrap(),
            PropFind::Prop(vec![
                dav("getcontentlength"),
                PropName {
                    ns: "urn:x".into(),
                    local: "foo".into()
                }
            ])
        );
        assert_eq!(
            parse_propfind(br#"<propfind xmlns="DAV:"><propname/></propfind>"#).unwrap(),
            PropFind::PropName
        );
    }

    #[test]
    fn malformed_or_foreign_bodies_are_400() {
        for bad in [
            &b"<foo>"[..],
            b"<propfind xmlns=\"DAV:\"><prop></propfind>",
            b"<D:propfind xmlns:D=\"urn:other\"><D:allprop/></D:propfind>",
            b"not xml",
            b"<propfind xmlns=\"DAV:\"><allprop/></propfind><x/>",
            b"<propfind xmlns=\"DAV:\" xmlns:bar=\"\"><allprop/></propfind>",
        ] {
            let e = parse_propfind(bad).unwrap_err();
            assert_eq!(
                e.status,
                StatusCode::BAD_REQUEST,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn proppatch_names_every_property() {
        let b = br#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><Z:a xmlns:Z="urn:z">1</Z:a></D:prop></D:set><D:remove><D:prop><Z:b xmlns:Z="urn:z"/></D:prop></D:remove></D:propertyupdate>"#;
        let names: Vec<String> = parse_proppatch(b)
            .unwrap()
            .into_iter()
            .map(|n| n.local)
            .collect();
        assert_eq!(names, ["a", "b"]);
    }
}
