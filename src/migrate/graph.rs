//! `ferrentd graph`: the routing graph of a config (sources → filters → matches, labels, copy
//! stores, relabel and rewrite_tag_filter edges) as Graphviz DOT or Mermaid, and the path one tag
//! takes through it. Built from the config alone: no plugin is constructed, nothing is started.

use std::fmt::Write;

use crate::config_parser::Element;
use crate::router::MatchPattern;

/// What a node stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Source,
    /// A router's entry point: `@ROOT` or a `<label>`.
    Router,
    Filter,
    Match,
    /// A `<store>` of a copy (or roundrobin) output.
    Store,
}

#[derive(Debug, Clone)]
pub struct Node {
    /// Stable, identifier-safe id (`n0`, `n1`, ...).
    pub id: String,
    pub kind: NodeKind,
    /// What the node shows: the directive, its pattern, its `@type` and `@id`.
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct Edge {
    pub from: String,
    pub to: String,
    /// The tag pattern or rule that selects this edge; empty when every event takes it.
    pub label: String,
}

#[derive(Debug, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

/// One directive of a router, in config order, as the path walk needs it.
struct Directive<'a> {
    node: String,
    elem: &'a Element,
    pattern: Option<MatchPattern>,
}

struct RouterInfo<'a> {
    name: String,
    node: String,
    directives: Vec<Directive<'a>>,
}

/// The routing structure of a config: routers with their directives, and sources.
pub struct Topology<'a> {
    graph: Graph,
    routers: Vec<RouterInfo<'a>>,
    sources: Vec<(String, &'a Element)>,
}

fn describe(e: &Element) -> String {
    let mut s = e.display_name();
    if let Some(t) = e.plugin_type() {
        let _ = write!(s, " @type {t}");
    }
    if let Some(id) = e.get("@id") {
        let _ = write!(s, " @id {id}");
    }
    s
}

/// `<worker>` contents count as top-level directives (ferrentd runs one worker).
fn flatten(parent: &Element) -> Vec<&Element> {
    let mut out = Vec::new();
    for e in &parent.elements {
        if e.name == "worker" {
            out.extend(e.elements.iter());
        } else {
            out.push(e);
        }
    }
    out
}

impl<'a> Topology<'a> {
    /// Reads the routing structure of `root` (after v0 forms were rewritten).
    pub fn new(root: &'a Element) -> Topology<'a> {
        let mut t = Topology {
            graph: Graph::default(),
            routers: Vec::new(),
            sources: Vec::new(),
        };
        let top = flatten(root);
        t.add_router("@ROOT", top.iter().copied());
        for label in top.iter().filter(|e| e.name == "label") {
            t.add_router(label.arg.trim(), flatten(label).into_iter());
        }
        for src in top.iter().filter(|e| e.name == "source") {
            let node = t.add_node(NodeKind::Source, describe(src));
            let tag = src.get("tag").unwrap_or("").to_string();
            let target = src.get("@label").unwrap_or("@ROOT");
            if let Some(r) = t.router_node(target) {
                t.edge(&node, &r, &format!("tag {tag}"));
            }
            t.sources.push((node, src));
        }
        t.add_outgoing_edges();
        t
    }

    fn add_node(&mut self, kind: NodeKind, text: String) -> String {
        let id = format!("n{}", self.graph.nodes.len());
        self.graph.nodes.push(Node {
            id: id.clone(),
            kind,
            text,
        });
        id
    }

    fn edge(&mut self, from: &str, to: &str, label: &str) {
        self.graph.edges.push(Edge {
            from: from.to_string(),
            to: to.to_string(),
            label: label.to_string(),
        });
    }

    fn router_node(&self, name: &str) -> Option<String> {
        self.routers
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.node.clone())
    }

    fn add_router(&mut self, name: &str, elems: impl Iterator<Item = &'a Element>) {
        let node = self.add_node(NodeKind::Router, name.to_string());
        let mut directives = Vec::new();
        for e in elems.filter(|e| e.name == "filter" || e.name == "match") {
            let kind = if e.name == "filter" {
                NodeKind::Filter
            } else {
                NodeKind::Match
            };
            let d = self.add_node(kind, describe(e));
            self.edge(&node, &d, e.arg.trim());
            directives.push(Directive {
                node: d,
                elem: e,
                pattern: MatchPattern::parse(&e.arg).ok(),
            });
        }
        self.routers.push(RouterInfo {
            name: name.to_string(),
            node,
            directives,
        });
    }

    /// Edges out of outputs that route again: relabel, `@label`, copy stores, rewrite_tag_filter.
    fn add_outgoing_edges(&mut self) {
        let mut pending: Vec<(String, &'a Element, String)> = Vec::new();
        for r in &self.routers {
            for d in r.directives.iter().filter(|d| d.elem.name == "match") {
                pending.push((d.node.clone(), d.elem, r.name.clone()));
            }
        }
        for (node, elem, router) in pending {
            self.output_edges(&node, elem, &router);
        }
    }

    fn output_edges(&mut self, node: &str, elem: &'a Element, router: &str) {
        let ty = elem.plugin_type().unwrap_or("");
        match ty {
            "copy" | "roundrobin" => {
                for store in elem.children("store") {
                    let s = self.add_node(NodeKind::Store, describe(store));
                    let label = store.get("weight").map(|w| format!("weight {w}"));
                    self.edge(node, &s, label.as_deref().unwrap_or(""));
                    self.output_edges(&s, store, router);
                }
            }
            "rewrite_tag_filter" => {
                for (i, rule) in elem.children("rule").enumerate() {
                    let target = rule.get("label").or(elem.get("@label")).unwrap_or(router);
                    let text = format!(
                        "rule {}: {} =~ {} → tag {}",
                        i + 1,
                        rule.get("key").unwrap_or("?"),
                        rule.get("pattern").unwrap_or("?"),
                        rule.get("tag").unwrap_or("?")
                    );
                    if let Some(r) = self.router_node(target) {
                        self.edge(node, &r, &text);
                    }
                }
            }
            _ => {
                if let Some(l) = elem.get("@label") {
                    if let Some(r) = self.router_node(l) {
                        let text = if ty == "relabel" { "relabel" } else { "@label" };
                        self.edge(node, &r, text);
                    }
                }
            }
        }
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The path a tag takes from `router` (`@ROOT` unless a label is named): the filters that
    /// match it in order up to the first matching `<match>`, then on through relabel, `@label`
    /// and copy stores. rewrite_tag_filter's new tags depend on records, so its rules are listed.
    pub fn trace(&self, tag: &str, router: &str) -> Vec<String> {
        let mut lines = Vec::new();
        let mut seen = Vec::new();
        self.trace_into(tag, router, 0, &mut lines, &mut seen);
        lines
    }

    fn trace_into(
        &self,
        tag: &str,
        router: &str,
        depth: usize,
        lines: &mut Vec<String>,
        seen: &mut Vec<String>,
    ) {
        let pad = "  ".repeat(depth);
        let Some(r) = self.routers.iter().find(|r| r.name == router) else {
            lines.push(format!("{pad}label {router}: not defined"));
            return;
        };
        let key = format!("{router}\u{0}{tag}");
        if seen.contains(&key) {
            lines.push(format!("{pad}{router}: loops back (already traced)"));
            return;
        }
        seen.push(key);
        lines.push(format!("{pad}{router} receives tag {tag}"));
        for d in &r.directives {
            let matched = d.pattern.as_ref().is_some_and(|p| p.matches(tag));
            if !matched {
                continue;
            }
            lines.push(format!("{pad}  {}", describe(d.elem)));
            if d.elem.name == "match" {
                self.trace_output(d.elem, tag, router, depth + 2, lines, seen);
                return;
            }
        }
        lines.push(format!(
            "{pad}  no <match> takes tag {tag}: events are dropped with a warning"
        ));
    }

    fn trace_output(
        &self,
        elem: &Element,
        tag: &str,
        router: &str,
        depth: usize,
        lines: &mut Vec<String>,
        seen: &mut Vec<String>,
    ) {
        let pad = "  ".repeat(depth);
        match elem.plugin_type().unwrap_or("") {
            "copy" | "roundrobin" => {
                for store in elem.children("store") {
                    lines.push(format!("{pad}{}", describe(store)));
                    self.trace_output(store, tag, router, depth + 1, lines, seen);
                }
            }
            "rewrite_tag_filter" => {
                for (i, rule) in elem.children("rule").enumerate() {
                    let target = rule.get("label").or(elem.get("@label")).unwrap_or(router);
                    lines.push(format!(
                        "{pad}rule {}: when {} =~ {} re-emits with tag {} into {target}",
                        i + 1,
                        rule.get("key").unwrap_or("?"),
                        rule.get("pattern").unwrap_or("?"),
                        rule.get("tag").unwrap_or("?"),
                    ));
                }
            }
            _ => {
                if let Some(l) = elem.get("@label") {
                    self.trace_into(tag, l, depth, lines, seen);
                }
            }
        }
    }

    /// The source nodes with their sections (for `--source` lookups by `@id`).
    pub fn sources(&self) -> impl Iterator<Item = &'a Element> + '_ {
        self.sources.iter().map(|(_, e)| *e)
    }
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn mermaid_escape(s: &str) -> String {
    s.replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
        .replace('|', "#124;")
}

impl Graph {
    /// Graphviz DOT.
    pub fn to_dot(&self) -> String {
        let mut s =
            String::from("digraph ferrentd {\n  rankdir=LR;\n  node [fontname=\"monospace\"];\n");
        for n in &self.nodes {
            let shape = match n.kind {
                NodeKind::Source => "invhouse",
                NodeKind::Router => "doubleoctagon",
                NodeKind::Filter => "box",
                NodeKind::Match => "box3d",
                NodeKind::Store => "component",
            };
            let _ = writeln!(
                s,
                "  {} [shape={shape}, label=\"{}\"];",
                n.id,
                dot_escape(&n.text)
            );
        }
        for e in &self.edges {
            if e.label.is_empty() {
                let _ = writeln!(s, "  {} -> {};", e.from, e.to);
            } else {
                let _ = writeln!(
                    s,
                    "  {} -> {} [label=\"{}\"];",
                    e.from,
                    e.to,
                    dot_escape(&e.label)
                );
            }
        }
        s.push_str("}\n");
        s
    }

    /// A Mermaid flowchart.
    pub fn to_mermaid(&self) -> String {
        let mut s = String::from("flowchart LR\n");
        for n in &self.nodes {
            let text = mermaid_escape(&n.text);
            let shape = match n.kind {
                NodeKind::Source => format!("{}>\"{text}\"]", n.id),
                NodeKind::Router => format!("{}{{{{\"{text}\"}}}}", n.id),
                NodeKind::Filter => format!("{}[\"{text}\"]", n.id),
                NodeKind::Match => format!("{}[[\"{text}\"]]", n.id),
                NodeKind::Store => format!("{}([\"{text}\"])", n.id),
            };
            let _ = writeln!(s, "  {shape}");
        }
        for e in &self.edges {
            if e.label.is_empty() {
                let _ = writeln!(s, "  {} --> {}", e.from, e.to);
            } else {
                let _ = writeln!(
                    s,
                    "  {} -->|\"{}\"| {}",
                    e.from,
                    mermaid_escape(&e.label),
                    e.to
                );
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Element {
        let mut root = crate::config_parser::parse_str(
            text,
            std::path::Path::new("t.conf"),
            &Default::default(),
        )
        .unwrap();
        crate::config_parser::compat::apply(&mut root).unwrap();
        root
    }

    const CONF: &str = r#"
<source>
  @type tail
  @id app_logs
  tag app.web
  path /x
  <parse>
    @type none
  </parse>
</source>
<filter app.**>
  @type grep
</filter>
<filter other.**>
  @type grep
</filter>
<match app.**>
  @type copy
  <store>
    @type stdout
    @id screen
  </store>
  <store>
    @type relabel
    @label @ARCHIVE
  </store>
</match>
<label @ARCHIVE>
  <match **>
    @type rewrite_tag_filter
    <rule>
      key level
      pattern /^error$/
      tag alert.${tag}
    </rule>
  </match>
</label>
"#;

    #[test]
    fn trace_follows_filters_copy_and_relabel() {
        let root = parse(CONF);
        let t = Topology::new(&root);
        let lines = t.trace("app.web", "@ROOT");
        assert_eq!(
            lines,
            vec![
                "@ROOT receives tag app.web",
                "  <filter app.**> @type grep",
                "  <match app.**> @type copy",
                "    <store> @type stdout @id screen",
                "    <store> @type relabel",
                "      @ARCHIVE receives tag app.web",
                "        <match **> @type rewrite_tag_filter",
                "          rule 1: when level =~ /^error$/ re-emits with tag alert.${tag} into @ARCHIVE",
            ]
        );
    }

    #[test]
    fn unmatched_tag_is_reported() {
        let root = parse(CONF);
        let t = Topology::new(&root);
        let lines = t.trace("nothing.here", "@ROOT");
        assert_eq!(
            lines.last().map(String::as_str),
            Some("  no <match> takes tag nothing.here: events are dropped with a warning")
        );
    }

    #[test]
    fn dot_and_mermaid_name_every_node_and_edge() {
        let root = parse(CONF);
        let t = Topology::new(&root);
        let g = t.graph();
        // source, 2 routers, 2 filters, 2 matches, 2 stores
        assert_eq!(g.nodes.len(), 9);
        let dot = g.to_dot();
        assert!(dot.starts_with("digraph ferrentd {"));
        assert!(dot.contains("label=\"<source> @type tail @id app_logs\""));
        assert!(dot.contains("[label=\"relabel\"]"));
        assert!(dot.contains("[label=\"tag app.web\"]"));
        let mermaid = g.to_mermaid();
        assert!(mermaid.starts_with("flowchart LR\n"));
        assert_eq!(
            mermaid.lines().filter(|l| l.contains("-->")).count(),
            g.edges.len()
        );
        assert!(mermaid.contains("#lt;source#gt; @type tail @id app_logs"));
    }
}
