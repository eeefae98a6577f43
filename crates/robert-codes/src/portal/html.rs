//! Server-rendered pages (plain HTML forms; one small script for the
//! countdown, copy and print). French first, English beside it
//! (`<span lang="en">`), as doctors in France may not read French.

/// English text beside the French, marked for screen readers.
fn en(text: &str) -> String {
    format!(" <span class=\"en\" lang=\"en\">{text}</span>")
}

use chrono::{DateTime, Utc};
use chrono_tz::Europe::Paris;

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A full page: `title` (escaped), `body` (trusted HTML), logout form if `csrf` is given.
pub fn page(title: &str, body: &str, logout_csrf: Option<&str>, script: bool) -> String {
    let logout = logout_csrf.map_or_else(String::new, |csrf| {
        format!(
            "<form method=\"post\" action=\"/portal/logout\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button type=\"submit\" class=\"secondary\">Se déconnecter{}</button></form>",
            escape(csrf),
            en("· Log out")
        )
    });
    let script = if script {
        "<script src=\"/portal/static/countdown.js\" defer></script>"
    } else {
        ""
    };
    format!(
        "<!doctype html>\n<html lang=\"fr\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} · Espace médecin TousAntiCovid</title>\n\
         <link rel=\"stylesheet\" href=\"/portal/static/portal.css\">\n{script}\n</head>\n<body>\n\
         <a class=\"skip\" href=\"#main\">Aller au contenu</a>\n\
         <header><p class=\"brand\">TousAntiCovid · Espace médecin{}</p>{logout}</header>\n\
         <main id=\"main\">\n{body}\n</main>\n\
         <footer><p>Les codes sont tirés au hasard et ne sont liés à aucun patient. \
         Ils ne sont pas conservés en clair et ne figurent dans aucun journal.{}</p></footer>\n\
         </body>\n</html>\n",
        escape(title),
        en("· Doctors"),
        en(
            "Codes are drawn at random and linked to no patient. They are not stored in clear \
            and appear in no log."
        )
    )
}

/// The login form.
pub fn login(csrf: &str, error: Option<&str>) -> String {
    let error = error.map_or_else(String::new, |e| {
        format!(
            "<div class=\"error\" role=\"alert\" id=\"login-error\">{}</div>",
            escape(e)
        )
    });
    page(
        "Connexion",
        &format!(
            "<h1>Connexion{}</h1>\n{error}\n\
             <form method=\"post\" action=\"/portal/login\">\n\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\n\
             <label for=\"username\">Identifiant{}</label>\n\
             <input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" \
             autocapitalize=\"none\" spellcheck=\"false\" required autofocus>\n\
             <label for=\"password\">Mot de passe{}</label>\n\
             <input type=\"password\" id=\"password\" name=\"password\" \
             autocomplete=\"current-password\" required>\n\
             <button type=\"submit\" id=\"login\">Se connecter{}</button>\n</form>",
            en("· Log in"),
            escape(csrf),
            en("· User name"),
            en("· Password"),
            en("· Log in")
        ),
        None,
        false,
    )
}

fn generate_form(csrf: &str, label: &str, label_en: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/portal/code\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button type=\"submit\" id=\"generate\">{}{}</button></form>",
        escape(csrf),
        escape(label),
        en(&escape(label_en))
    )
}

/// The page offering to generate a code; `reset` is when the daily quota
/// starts again.
pub fn request(
    display_name: &str,
    csrf: &str,
    left: u64,
    quota: u64,
    minutes: u32,
    reset: DateTime<Utc>,
) -> String {
    let (hhmm, _) = paris_time(reset);
    let form = if left > 0 {
        generate_form(csrf, "Générer un code", "· Generate a code")
    } else {
        format!(
            "<p class=\"error\" role=\"alert\">Quota du jour atteint : il repart à zéro à {hhmm} \
             (heure de Paris).{}</p>",
            en(&format!(
                "Daily quota reached: it resets at {hhmm} (Paris time)."
            ))
        )
    };
    page(
        "Générer un code",
        &format!(
            "<h1>Générer un code de déclaration{}</h1>\n\
             <p>Bonjour {}. Générez un code court pour un patient diagnostiqué positif. \
             Il devra le saisir dans l'application TousAntiCovid dans les {minutes} minutes.{}</p>\n\
             <p>Codes restants aujourd'hui : <strong id=\"quota-left\">{left}</strong> sur {quota} \
             (remis à zéro à <span id=\"quota-reset\">{hhmm}</span>, heure de Paris).{}</p>\n{form}",
            en("· Generate a report code"),
            escape(display_name),
            en(&format!(
                "Generate a short code for a patient who tested positive; they type it in the \
                 TousAntiCovid app within {minutes} minutes."
            )),
            en(&format!(
                "Codes left today: {left} of {quota} (reset at {hhmm}, Paris time)."
            ))
        ),
        Some(csrf),
        false,
    )
}

/// Paris local time as `HH:MM`, and date as `dd/mm/yyyy`.
pub fn paris_time(t: DateTime<Utc>) -> (String, String) {
    let p = t.with_timezone(&Paris);
    (
        p.format("%H:%M").to_string(),
        p.format("%d/%m/%Y").to_string(),
    )
}

/// The page showing a fresh code, large, with its expiry, a countdown, its
/// QR code (`qr_svg`, trusted SVG markup of the app's deep link) and copy and
/// print buttons.
pub fn code(
    code: &str,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
    csrf: &str,
    left: u64,
    qr_svg: &str,
) -> String {
    let (hhmm, date) = paris_time(until);
    let remaining = (until - now).num_seconds().max(0);
    let spaced: String = code.chars().map(|c| format!("{c} ")).collect();
    page(
        "Code généré",
        &format!(
            "<h1>Code pour votre patient{}</h1>\n\
             <div class=\"code-box\">\n\
             <p class=\"code\" id=\"code\" aria-describedby=\"code-spelled\">{}</p>\n\
             <p class=\"visually-hidden\" id=\"code-spelled\" hidden>{}</p>\n\
             <p class=\"expiry\">Valable jusqu'à <time id=\"expiry\" datetime=\"{}\">{hhmm}</time> \
             (heure de Paris, le {date}){}</p>\n\
             <p>Temps restant : <span id=\"countdown\" role=\"timer\" aria-live=\"off\" \
             data-expires=\"{}\" data-expired-text=\"code expiré · expired\">{} min {:02} s</span></p>\n\
             <div class=\"qr\" id=\"qr\">{qr_svg}</div>\n\
             <p class=\"qr-help\">Le patient peut aussi scanner ce QR code avec son téléphone.{}</p>\n\
             <p class=\"actions\"><button type=\"button\" class=\"secondary\" id=\"copy\" \
             data-code=\"{}\" data-copied-text=\"Copié · Copied\" hidden>Copier le code{}</button> \
             <button type=\"button\" class=\"secondary\" id=\"print\" hidden>Imprimer{}</button>\
             <span id=\"copy-status\" role=\"status\"></span></p>\n\
             </div>\n\
             <p>Donnez ce code au patient : il le saisit dans l'application TousAntiCovid pour se \
             déclarer. Le code ne sert qu'une fois. Il n'est conservé nulle part en clair : \
             si vous quittez cette page, il ne pourra plus être affiché.{}</p>\n\
             <p>Codes restants aujourd'hui : <strong id=\"quota-left\">{left}</strong>.{}</p>\n{}",
            en("· Code for your patient"),
            escape(code),
            escape(spaced.trim_end()),
            until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            en(&format!("Valid until {hhmm} (Paris time, {date})")),
            until.timestamp(),
            remaining / 60,
            remaining % 60,
            en("The patient can also scan this QR code with their phone."),
            escape(code),
            en("· Copy the code"),
            en("· Print"),
            en(
                "Give this code to the patient: they type it in the TousAntiCovid app to report. \
                 It works once and is stored nowhere in clear: once you leave this page it \
                 cannot be shown again."
            ),
            en(&format!("Codes left today: {left}.")),
            generate_form(csrf, "Générer un autre code", "· Generate another code")
        ),
        Some(csrf),
        true,
    )
}

/// A simple message page.
pub fn message(title: &str, text: &str, csrf: Option<&str>) -> String {
    let back = if csrf.is_some() {
        "<p><a href=\"/portal/code\">Retour</a></p>"
    } else {
        "<p><a href=\"/portal/login\">Retour à la connexion</a></p>"
    };
    page(
        title,
        &format!(
            "<h1>{}</h1>\n<p class=\"error\" role=\"alert\">{}</p>\n{back}",
            escape(title),
            escape(text)
        ),
        csrf,
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_dangerous() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn pages_have_labels_and_language() {
        let p = login("tok", Some("<b>bad</b>"));
        assert!(p.contains("<html lang=\"fr\">"));
        assert!(p.contains("<label for=\"username\">") && p.contains("id=\"username\""));
        assert!(p.contains("<label for=\"password\">") && p.contains("id=\"password\""));
        assert!(p.contains("name=\"viewport\""));
        assert!(p.contains("&lt;b&gt;bad&lt;/b&gt;"));
    }
}
