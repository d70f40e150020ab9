//! A proxy-wasm HTTP filter doing what porin's `http` filter does with
//! Cilium HTTP rules, restricted to `method` and `path`: each rule is a pair
//! of regular expressions anchored at both ends; a request is allowed when
//! any rule matches both its `:method` and its `:path`, and is answered
//! `403 Forbidden` otherwise.
//!
//! The plugin configuration holds the rules, one per line: `METHOD PATH`
//! (regular expressions; `#` starts a comment line).
//!
//! Build: `cargo build --release --target wasm32-unknown-unknown`.

use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use regex::Regex;

struct Rule {
    method: Regex,
    path: Regex,
}

fn anchored(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{pattern})$"))
}

fn parse_rules(text: &str) -> Result<Vec<Rule>, String> {
    let mut rules = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (method, path) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("line {}: expected `METHOD PATH`", number + 1))?;
        let method = anchored(method.trim()).map_err(|e| format!("line {}: {e}", number + 1))?;
        let path = anchored(path.trim()).map_err(|e| format!("line {}: {e}", number + 1))?;
        rules.push(Rule { method, path });
    }
    Ok(rules)
}

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Warn);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { rules: Rc::new(Vec::new()) }) });
}}

struct Root {
    rules: Rc<Vec<Rule>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        let text = String::from_utf8_lossy(&config);
        match parse_rules(&text) {
            Ok(rules) => {
                self.rules = Rc::new(rules);
                true
            }
            Err(error) => {
                proxy_wasm::hostcalls::log(LogLevel::Error, &format!("bad rules: {error}")).ok();
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Filter { rules: Rc::clone(&self.rules) }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Filter {
    rules: Rc<Vec<Rule>>,
}

impl Context for Filter {}

impl HttpContext for Filter {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let method = self.get_http_request_header(":method").unwrap_or_default();
        let path = self.get_http_request_header(":path").unwrap_or_default();
        // An empty rule list allows everything, as in Cilium.
        let allowed = self.rules.is_empty()
            || self.rules.iter().any(|rule| rule.method.is_match(&method) && rule.path.is_match(&path));
        if allowed {
            Action::Continue
        } else {
            self.send_http_response(403, vec![("content-type", "text/plain")], Some(b"Access denied\r\n"));
            Action::Pause
        }
    }
}
