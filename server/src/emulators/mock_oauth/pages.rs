//! The emulator's two HTML pages: consent and error. The consent form posts back
//! to the same URL (the authorize request's query string stays in it).

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn consent(provider: &str) -> String {
    let provider = escape(provider);
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{provider} (calos mock-oauth)</title></head>
<body>
<h1>Sign in to {provider} <small>(calos mock-oauth emulator)</small></h1>
<form method="post">
  <label>Subject <input name="sub" value="emulated-user-1" data-testid="sub"></label><br>
  <label>Email <input name="email" value="person@example.com" data-testid="email"></label><br>
  <label><input type="checkbox" name="email_verified" value="true" checked> email verified</label><br>
  <label>Name <input name="name" value="Emulated Person" data-testid="name"></label><br>
  <button name="decision" value="approve" data-testid="approve">Approve</button>
  <button name="decision" value="deny" data-testid="deny">Deny</button>
</form>
</body></html>"#
    )
}

pub fn error(message: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Error</title></head>\
         <body><h1>Invalid authorization request</h1><p>{}</p></body></html>",
        escape(message)
    )
}
