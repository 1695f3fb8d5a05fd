//! One builder for the config files the tests give the daemon, so that a test names what its
//! config holds (`Toml::daemon(port).celery("jobs", &queue).target("workers", "data", "worker")`)
//! instead of writing the TOML again.
//!
//! It writes the sections in the file's own order: `[daemon]`, the sources, then each target with
//! its tables. [`Toml::raw`] adds any other text to the section written last, for keys the
//! builder has no method for.

/// A config file, section by section; [`Toml::render`] gives its text.
#[derive(Default)]
pub struct Toml {
    daemon: Option<String>,
    sources: Vec<String>,
    targets: Vec<Target>,
}

/// One `[[targets]]` entry: its keys, its triggers and its tables (`[targets.scale_up]`, …).
struct Target {
    keys: String,
    triggers: Vec<String>,
    lines: String,
    tables: Vec<String>,
}

impl Toml {
    /// No `[daemon]` section: the daemon's defaults.
    pub fn new() -> Toml {
        Toml::default()
    }

    /// A `[daemon]` polling every second, its admin port on `127.0.0.1:port`.
    pub fn daemon(port: u16) -> Toml {
        let daemon = format!("interval = \"1s\"\nlisten = \"127.0.0.1:{port}\"\n");
        Toml { daemon: Some(daemon), ..Toml::default() }
    }

    /// `[sources.NAME]` of `kind`, its other keys to follow ([`Toml::raw`]).
    pub fn source(mut self, name: &str, kind: &str) -> Toml {
        self.sources.push(format!("[sources.{name}]\nkind = \"{kind}\"\n"));
        self
    }

    /// A Celery source `name` on `queue` of the test Redis.
    pub fn celery(self, name: &str, queue: &str) -> Toml {
        self.celery_at(name, &super::redis::url(), queue)
    }

    /// A Celery source `name` on `queue` of the broker at `url`.
    pub fn celery_at(self, name: &str, url: &str, queue: &str) -> Toml {
        self.source(name, "celery").raw(&format!("url = \"{url}\"\nqueues = [\"{queue}\"]"))
    }

    /// An Airflow source `name` on the metadata database at `url`.
    pub fn airflow(self, name: &str, url: &str) -> Toml {
        self.source(name, "airflow").raw(&format!("url = \"{url}\""))
    }

    /// A `[[targets]]` entry `name` on the Deployment `namespace/deployment`.
    pub fn target(mut self, name: &str, namespace: &str, deployment: &str) -> Toml {
        let keys = format!("name = \"{name}\"\nnamespace = \"{namespace}\"\ndeployment = \"{deployment}\"\n");
        self.targets.push(Target { keys, triggers: Vec::new(), lines: String::new(), tables: Vec::new() });
        self
    }

    /// The last target scales a StatefulSet of its workload's name instead of a Deployment.
    pub fn statefulset(mut self) -> Toml {
        let target = self.last_target();
        target.keys = target.keys.replace("deployment = ", "kind = \"StatefulSet\"\nstatefulset = ");
        self
    }

    /// The last target's `min_replicas` and `max_replicas`.
    pub fn bounds(self, min: u32, max: u32) -> Toml {
        self.target_key(&format!("min_replicas = {min}")).max_replicas(max)
    }

    /// The last target's `max_replicas` alone (`min_replicas` left to its default).
    pub fn max_replicas(self, max: u32) -> Toml {
        self.target_key(&format!("max_replicas = {max}"))
    }

    /// A trigger of the last target: one replica per `per_replica` of `source`'s value.
    pub fn per_replica(mut self, source: &str, per_replica: u32) -> Toml {
        let trigger = format!("{{ source = \"{source}\", per_replica = {per_replica} }}");
        self.last_target().triggers.push(trigger);
        self
    }

    /// `[targets.scale_up]`: at most `pods` more replicas every 500 ms, shorter than a 1 s poll,
    /// so that each poll may take one full step.
    pub fn scale_up_pods(self, pods: u32) -> Toml {
        let policy = format!("policies = [{{ type = \"pods\", value = {pods}, period = \"500ms\" }}]");
        self.table("scale_up", &policy)
    }

    /// `[targets.scale_down]` without a stabilization window, any number of replicas every 500 ms:
    /// a scale-down happens at the next poll.
    pub fn scale_down_at_once(self) -> Toml {
        let policy = "policies = [{ type = \"percent\", value = 100, period = \"500ms\" }]";
        self.table("scale_down", &format!("stabilization = \"0s\"\n{policy}"))
    }

    /// A table `[targets.NAME]` of the last target, holding `body` (key lines).
    pub fn table(mut self, name: &str, body: &str) -> Toml {
        let mut table = format!("[targets.{name}]\n");
        push_lines(&mut table, body);
        self.last_target().tables.push(table);
        self
    }

    /// Adds `text` (key lines, or whole tables) at the end of the section written last: the
    /// last target's last table, else the last target, else the last source, else `[daemon]`.
    pub fn raw(mut self, text: &str) -> Toml {
        let section = match (self.targets.last_mut(), self.sources.last_mut()) {
            (Some(target), _) => target.tables.last_mut().unwrap_or(&mut target.lines),
            (None, Some(source)) => source,
            (None, None) => self.daemon.get_or_insert_with(String::new),
        };
        push_lines(section, text);
        self
    }

    /// The config file's text.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Some(daemon) = &self.daemon {
            text += &format!("\n[daemon]\n{daemon}");
        }
        for source in &self.sources {
            text += &format!("\n{source}");
        }
        for target in &self.targets {
            text += &format!("\n[[targets]]\n{}", target.keys);
            if !target.triggers.is_empty() {
                text += &format!("triggers = [{}]\n", target.triggers.join(", "));
            }
            text += &target.lines;
            for table in &target.tables {
                text += &format!("\n{table}");
            }
        }
        text
    }

    fn target_key(mut self, line: &str) -> Toml {
        push_lines(&mut self.last_target().keys, line);
        self
    }

    fn last_target(&mut self) -> &mut Target {
        self.targets.last_mut().expect("a target first: Toml::target")
    }
}

/// Appends `text` to `section` as whole lines, without the blank lines around it.
fn push_lines(section: &mut String, text: &str) {
    section.push_str(text.trim_matches('\n'));
    section.push('\n');
}
