//! `phoenix queries ...`

use std::path::Path;

use phoenix_api::query::{NewQuerySource, QuerySource, QuerySourceList, SourceKind};

use crate::Context;
use crate::cli::{QueriesCommand, QuerySourceKind};
use crate::error::CliError;
use crate::output::{time, wire};
use crate::table::Table;

pub(crate) async fn run(cx: &Context, command: QueriesCommand) -> Result<(), CliError> {
    match command {
        QueriesCommand::Import { files, kind, name } => {
            if name.is_some() && files.len() > 1 {
                return Err(CliError::Input(
                    "--name names one source: pass one file with it".to_owned(),
                ));
            }
            let mut imported = Vec::new();
            for file in &files {
                let request = read_source(file, kind, name.as_deref())?;
                let source = cx
                    .client
                    .import_query_source(&request)
                    .await
                    .map_err(|e| cx.err(e))?;
                cx.printer.note(&format!(
                    "imported {} ({}): {} quer{} (id {})",
                    source.name,
                    wire(&source.kind),
                    source.queries.len(),
                    if source.queries.len() == 1 {
                        "y"
                    } else {
                        "ies"
                    },
                    source.id
                ));
                imported.push(source);
            }
            if cx.printer.is_json() {
                cx.printer.show(&imported, |_| String::new());
            }
            Ok(())
        }
        QueriesCommand::List { queries } => {
            let list = cx
                .client
                .list_query_sources()
                .await
                .map_err(|e| cx.err(e))?;
            if queries {
                cx.printer.show(&list, queries_view);
            } else {
                cx.printer.show(&list, sources_view);
            }
            Ok(())
        }
        QueriesCommand::Delete { id } => {
            cx.client
                .delete_query_source(id)
                .await
                .map_err(|e| cx.err(e))?;
            cx.printer.note(&format!("deleted query source {id}"));
            Ok(())
        }
    }
}

/// The import request for `file`: its content, its name (the file name unless given) and
/// its kind (given, or from the extension, or from the content).
fn read_source(
    file: &Path,
    kind: Option<QuerySourceKind>,
    name: Option<&str>,
) -> Result<NewQuerySource, CliError> {
    let content = std::fs::read_to_string(file)
        .map_err(|e| CliError::Input(format!("cannot read {}: {e}", file.display())))?;
    let name = name.map_or_else(
        || {
            file.file_name().map_or_else(
                || file.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
        },
        str::to_owned,
    );
    let kind = match kind {
        Some(QuerySourceKind::RuleFile) => SourceKind::RuleFile,
        Some(QuerySourceKind::GrafanaDashboard) => SourceKind::GrafanaDashboard,
        Some(QuerySourceKind::PromqlList) => SourceKind::PromqlList,
        None => detect_kind(file, &content),
    };
    Ok(NewQuerySource {
        name,
        kind,
        content,
    })
}

/// `.json` is a dashboard, `.yml`/`.yaml` a rule file, `.promql`/`.txt` a list; otherwise
/// a JSON object is a dashboard, a `groups:` key a rule file, anything else a list.
pub(crate) fn detect_kind(file: &Path, content: &str) -> SourceKind {
    let extension = file
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match extension.as_deref() {
        Some("json") => SourceKind::GrafanaDashboard,
        Some("yml" | "yaml") => SourceKind::RuleFile,
        Some("promql" | "txt") => SourceKind::PromqlList,
        _ if content.trim_start().starts_with('{') => SourceKind::GrafanaDashboard,
        _ if content
            .lines()
            .any(|l| l.trim_start().starts_with("groups:")) =>
        {
            SourceKind::RuleFile
        }
        _ => SourceKind::PromqlList,
    }
}

fn sources_view(list: &QuerySourceList) -> String {
    if list.items.is_empty() {
        return "no query sources: import some with `phoenix queries import FILE...`\n".to_owned();
    }
    let mut t = Table::new(&["ID", "NAME", "KIND", "QUERIES", "IMPORTED", "BY"]);
    for s in &list.items {
        t.row(vec![
            s.id.to_string(),
            s.name.clone(),
            wire(&s.kind),
            s.queries.len().to_string(),
            time(&s.imported_at),
            s.imported_by.clone(),
        ]);
    }
    t.render()
}

fn queries_view(list: &QuerySourceList) -> String {
    if list.items.is_empty() {
        return sources_view(list);
    }
    let mut t = Table::new(&["SOURCE", "ROLE", "NAME", "METRICS", "LABELS"]);
    for QuerySource { name, queries, .. } in &list.items {
        for q in queries {
            t.row(vec![
                name.clone(),
                wire(&q.role),
                q.name.clone(),
                q.metrics.join(","),
                q.labels.join(","),
            ]);
        }
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_from_extension_then_content() {
        let k = |f: &str, c: &str| detect_kind(Path::new(f), c);
        assert_eq!(k("a.json", ""), SourceKind::GrafanaDashboard);
        assert_eq!(k("a.YAML", ""), SourceKind::RuleFile);
        assert_eq!(k("a.promql", "{"), SourceKind::PromqlList);
        assert_eq!(k("dash", " {\"panels\": []}"), SourceKind::GrafanaDashboard);
        assert_eq!(k("rules", "# x\ngroups:\n- name: a"), SourceKind::RuleFile);
        assert_eq!(k("list", "up\nrate(x[5m])"), SourceKind::PromqlList);
    }
}
