"""The ``accueil`` command line: serve, worker, db, user, demo, mcp, eval, backup, restore."""

import getpass
import secrets
from pathlib import Path
from typing import Annotated

import typer

from app.config.settings import get_settings

cli = typer.Typer(help="Accueil — assistant local du cabinet médical.", no_args_is_help=True)
db_cli = typer.Typer(help="Base de données (migrations).", no_args_is_help=True)
user_cli = typer.Typer(help="Comptes du personnel.", no_args_is_help=True)
demo_cli = typer.Typer(help="Données de démonstration.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(user_cli, name="user")
cli.add_typer(demo_cli, name="demo")
mcp_cli = typer.Typer(
    help="Serveurs MCP (outils du cabinet) et leurs clients.", no_args_is_help=True
)
cli.add_typer(mcp_cli, name="mcp")
eval_cli = typer.Typer(
    help="Évaluations de la qualité (recherche, assistant).", no_args_is_help=True
)
cli.add_typer(eval_cli, name="eval")
questionnaires_cli = typer.Typer(
    help="Questionnaires de pré-consultation (FHIR R4).", no_args_is_help=True
)
cli.add_typer(questionnaires_cli, name="questionnaires")
model_cli = typer.Typer(
    help="Modèle de l'assistant : validation avant usage.", no_args_is_help=True
)
cli.add_typer(model_cli, name="model")


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="Adresse d'écoute")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    reload: Annotated[bool, typer.Option(help="Recharger le code (développement)")] = False,
    workers: Annotated[int, typer.Option(help="Processus")] = 1,
) -> None:
    """Start the web application."""
    import uvicorn

    # X-Forwarded-For/-Proto are believed only from ACCUEIL_TRUSTED_PROXIES (none by default),
    # not from uvicorn's default of 127.0.0.1: the login limits count per client address.
    trusted_proxies = get_settings().trusted_proxies
    uvicorn.run(
        "app.asgi:app",
        host=host,
        port=port,
        reload=reload,
        workers=workers,
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=",".join(trusted_proxies) or None,
        access_log=False,  # app.web.middleware.RequestLog logs requests without query strings
    )


@cli.command()
def worker(
    workers: Annotated[
        int | None, typer.Option(help="Fils d'exécution (défaut : ACCUEIL_JOBS_WORKERS)")
    ] = None,
) -> None:
    """Run the background jobs until stopped (Ctrl-C waits for the running job).
    `accueil serve` runs them itself unless ACCUEIL_JOBS_IN_PROCESS=false."""
    from app.jobs.queue import configure
    from app.jobs.worker import run_worker
    from app.services.flows import job_handlers

    settings = get_settings()
    queue = configure(settings)
    job_handlers.load_handlers()
    job_handlers.add_periodic_tasks(queue)
    run_worker(queue, workers=workers or settings.jobs_workers)


@db_cli.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply the migrations up to REVISION (head by default)."""
    from models.migrate import upgrade

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.resolved_database_url, revision)
    typer.echo(f"Schéma à jour ({revision}).")


@db_cli.command("check")
def db_check() -> None:
    """Fail if the models and the database schema differ."""
    from models.migrate import check

    check(get_settings().resolved_database_url)
    typer.echo("Aucune différence entre les modèles et le schéma.")


def _session():
    from models.db import make_engine, session_scope

    engine = make_engine(get_settings().resolved_database_url)
    return session_scope(engine)


@user_cli.command("create")
def user_create(
    username: Annotated[str, typer.Option(help="Identifiant de connexion")],
    role: Annotated[str, typer.Option(help="secretary, physician ou admin")],
    full_name: Annotated[str, typer.Option(help="Nom affiché")] = "",
    password: Annotated[
        str | None, typer.Option(help="Mot de passe (demandé s'il est absent)")
    ] = None,
    practitioner_id: Annotated[int | None, typer.Option(help="Praticien lié (médecin)")] = None,
) -> None:
    """Create a staff account."""
    from app.services.core.errors import DomainError
    from app.services.identity.users import create_user
    from models.users import Role

    if role not in {r.value for r in Role}:
        raise typer.BadParameter("rôle inconnu : secretary, physician ou admin", param_hint="role")
    if password is None:
        password = getpass.getpass("Mot de passe : ")
        if getpass.getpass("Confirmez : ") != password:
            typer.echo("Les mots de passe diffèrent.", err=True)
            raise typer.Exit(1)
    try:
        with _session() as session:
            user = create_user(
                session,
                username=username,
                full_name=full_name or username,
                role=Role(role),
                password=password,
                practitioner_id=practitioner_id,
            )
            typer.echo(f"Compte « {user.username} » créé ({user.role}).")
    except DomainError as exc:
        typer.echo(exc.fr, err=True)
        raise typer.Exit(1) from exc


@user_cli.command("set-password")
def user_set_password(
    username: str,
    password: Annotated[str | None, typer.Option(help="Nouveau mot de passe")] = None,
) -> None:
    """Set a new password (prints a random one when none is given)."""
    from sqlmodel import select

    from app.services.core.audit import Actor
    from app.services.core.errors import DomainError
    from app.services.identity.users import set_password
    from models.users import User

    password = password or secrets.token_urlsafe(12)
    try:
        with _session() as session:
            user = session.exec(select(User).where(User.username == username.lower())).first()
            if user is None:
                typer.echo(f"Compte « {username} » introuvable.", err=True)
                raise typer.Exit(1)
            set_password(session, user, password, Actor.system("cli"))
    except DomainError as exc:
        typer.echo(exc.fr, err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"Nouveau mot de passe de « {username} » : {password}")


@demo_cli.command("seed")
def demo_seed(
    patients: Annotated[int, typer.Option(help="Nombre de patients")] = 200,
    seed: Annotated[int, typer.Option(help="Graine du générateur")] = 2026,
) -> None:
    """Fill an empty database with a realistic demo practice and import the sample practice
    handbook into the knowledge base (does nothing twice)."""
    from app.services.operations.demo import seed_demo, seed_knowledge

    with _session() as session:
        result = seed_demo(session, get_settings(), patients=patients, seed=seed)
    with _session() as session:
        knowledge_note = seed_knowledge(session, get_settings())
    with _session() as session:
        from app.services.preconsultation.questionnaires import import_bundled

        imported = sum(created for _, created in import_bundled(session))
    typer.echo(f"Questionnaires de pré-consultation : {imported} importé(s).")
    if result.already_seeded:
        typer.echo("Données de démonstration déjà présentes : rien à faire.")
        typer.echo(knowledge_note)
        return
    typer.echo(knowledge_note)
    typer.echo(
        f"Démo créée : {result.practitioners} praticiens, {result.patients} patients, "
        f"{result.appointments} rendez-vous."
    )
    typer.echo("Comptes de démonstration (mots de passe affichés une seule fois) :")
    for username, password in result.credentials.items():
        typer.echo(f"  {username:<12} {password}")


@questionnaires_cli.command("import")
def questionnaires_import(
    files: Annotated[
        list[Path] | None, typer.Argument(help="Fichiers FHIR JSON (défaut : ceux fournis)")
    ] = None,
) -> None:
    """Import questionnaires (validated FHIR R4 JSON); a version already present is skipped."""
    from app.services.core.errors import DomainError
    from app.services.preconsultation.questionnaires import import_bundled, import_files

    try:
        with _session() as session:
            rows = import_files(session, files) if files else import_bundled(session)
            for row, created in rows:
                state = "importé" if created else "déjà présent"
                typer.echo(f"{row.slug} {row.version} ({row.language}) : {state}")
    except DomainError as exc:
        typer.echo(exc.fr, err=True)
        raise typer.Exit(1) from exc


@questionnaires_cli.command("export")
def questionnaires_export(
    slug: str,
    language: Annotated[str, typer.Option(help="fr ou en")] = "fr",
) -> None:
    """Print the active version of a questionnaire as FHIR R4 JSON."""
    import json

    from app.services.core.errors import DomainError
    from app.services.preconsultation.questionnaires import export_resource, pick

    try:
        with _session() as session:
            row = pick(session, visit_type=None, language=language, slug=slug)
            typer.echo(json.dumps(export_resource(row), ensure_ascii=False, indent=2))
    except DomainError as exc:
        typer.echo(exc.fr, err=True)
        raise typer.Exit(1) from exc


@mcp_cli.command("serve")
def mcp_serve(
    server: Annotated[str, typer.Argument(help="agenda, questionnaires ou knowledge")],
    transport: Annotated[str, typer.Option(help="stdio ou http")] = "stdio",
    host: Annotated[str, typer.Option(help="Adresse d'écoute (http)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (http)")] = 8100,
) -> None:
    """Run one MCP server alone, over stdio (for a local MCP client) or streamable HTTP."""
    import getpass

    import uvicorn

    from app.services.core.audit import Actor
    from mcp_servers.mount import SERVERS
    from mcp_servers.runtime import BearerTokenGuard, ToolRuntime
    from models.audit import ActorKind
    from models.db import make_engine

    if server not in SERVERS:
        raise typer.BadParameter(f"serveur inconnu ; choix : {', '.join(SERVERS)}")
    settings = get_settings()
    engine = make_engine(settings.resolved_database_url)
    actor = Actor(kind=ActorKind.mcp_client, name=f"stdio:{getpass.getuser()}")
    mcp = SERVERS[server](ToolRuntime(engine, settings, actor))
    if transport == "stdio":
        mcp.run("stdio")
    elif transport == "http":
        # Alone over HTTP, the same bearer tokens as in the app protect it.
        uvicorn.run(
            BearerTokenGuard(mcp.streamable_http_app(), engine, server),
            host=host,
            port=port,
            access_log=False,
        )
    else:
        raise typer.BadParameter("transport : stdio ou http")


@mcp_cli.command("client-create")
def mcp_client_create(
    name: str,
    area: Annotated[
        list[str] | None,
        typer.Option(help="Domaine ouvert (répéter l'option) ; tous par défaut"),
    ] = None,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Outils de lecture seulement")
    ] = False,
) -> None:
    """Create an MCP client and print its bearer token (shown once)."""
    from app.services.core.audit import Actor
    from app.services.core.errors import DomainError
    from app.services.identity.mcp_clients import create_client

    try:
        with _session() as session:
            client, token = create_client(
                session, Actor.system("cli"), name, areas=area or None, can_write=not read_only
            )
    except DomainError as exc:
        typer.echo(exc.fr, err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"Client MCP « {client.name} » créé. Jeton (affiché une seule fois) :")
    typer.echo(token)


@mcp_cli.command("client-revoke")
def mcp_client_revoke(name: str) -> None:
    """Revoke an MCP client's token."""
    from sqlmodel import select

    from app.services.core.audit import Actor
    from app.services.identity.mcp_clients import revoke_client
    from models.mcp_clients import McpClient

    with _session() as session:
        client = session.exec(select(McpClient).where(McpClient.name == name)).first()
        if client is None:
            typer.echo(f"Client « {name} » introuvable.", err=True)
            raise typer.Exit(1)
        revoke_client(session, Actor.system("cli"), client.id or 0)
    typer.echo(f"Jeton de « {name} » révoqué.")


@eval_cli.command("knowledge")
def eval_knowledge(
    questions: Annotated[
        Path | None,
        typer.Option(
            help="Questions (YAML) ; par défaut les jeux de evals/data/knowledge/ "
            "(questions.yaml et calibration.yaml calibrés, les autres mis de côté)"
        ),
    ] = None,
    documents: Annotated[
        Path | None,
        typer.Option(help="Dossier des documents ; par défaut les livrets de la démo"),
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Seulement les N premières questions")] = None,
    out: Annotated[Path | None, typer.Option(help="Dossier des rapports")] = None,
    calibrate: Annotated[
        bool,
        typer.Option(
            help="Recalibrer « pas de réponse » sur les questions calibrées ; avec --questions, "
            "la calibration propre au cabinet (dans son dossier de données)"
        ),
    ] = False,
) -> None:
    """Measure recall@k, MRR and "no answer" of the knowledge search (configured model)."""
    from app.services.core.audit import Actor
    from app.services.core.errors import DomainError
    from app.services.knowledge.no_answer import PRACTICE_FILE
    from evals import knowledge as knowledge_eval

    settings = get_settings()
    try:
        result = knowledge_eval.evaluate(
            settings,
            questions=questions,
            documents=documents or knowledge_eval.DOCUMENTS,
            limit=limit,
            calibrate=calibrate,
            calibration_file=settings.data_dir / PRACTICE_FILE if questions else None,
        )
    except DomainError as exc:
        typer.echo(exc.fr, err=True)
        raise typer.Exit(1) from exc
    if result.calibrated and questions is not None:
        # The practice's own calibration changes what its staff are told ("not in the
        # documents", doubtful): who wrote it, when, and on what, go to its audit trail.
        from app.services.knowledge.library import record_calibration

        scores, cross_validated = result.scores, result.cross_validated
        with _session() as session:
            record_calibration(
                session,
                Actor.system(f"cli:{getpass.getuser()}"),
                Path(result.calibration_file),
                questions=scores.questions + scores.unanswerable,
                unanswerable=scores.unanswerable,
                f1=scores.no_answer_f1,
                f1_cross_validated=cross_validated.no_answer_f1 if cross_validated else None,
            )
    json_path, md_path = knowledge_eval.write_reports(result, out or knowledge_eval.REPORTS)
    typer.echo(knowledge_eval.summary(result))
    typer.echo(f"Rapports : {json_path} et {md_path}")


@eval_cli.command("red-flags")
def eval_red_flags(
    corpus_dir: Annotated[
        Path | None,
        typer.Option("--corpus", help="Dossier des cas (YAML) ; par défaut le corpus des tests"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Rapport JSON")] = False,
    strict: Annotated[
        bool, typer.Option(help="Code 1 si sensibilité urgence < 1 ou spécificité < 0,95")
    ] = False,
) -> None:
    """Sensibilité et spécificité des signaux d'alerte sur le corpus de cas, et chaque erreur."""
    import json

    from evals import red_flags as red_flags_eval

    cases = red_flags_eval.load_cases(corpus_dir or red_flags_eval.CORPUS)
    report = red_flags_eval.evaluate(cases)
    if as_json:
        typer.echo(json.dumps(red_flags_eval.as_json(report), ensure_ascii=False, indent=2))
    else:
        typer.echo(red_flags_eval.summary(report))
    urgent_ok, urgent_total = report.rate(("urgent",))
    negative_ok, negative_total = report.rate(("negative", "hard-negative"))
    if strict and (
        urgent_ok < urgent_total or (negative_total and negative_ok / negative_total < 0.95)
    ):
        raise typer.Exit(1)


@eval_cli.command("secretary")
def eval_secretary(
    model: Annotated[
        str,
        typer.Option(
            help="scripted, configured (défaut de l'app), embedded, ollama:NOM ou openai:NOM"
        ),
    ] = "configured",
    repeats: Annotated[int, typer.Option(min=1, help="Exécutions par scénario (pass^k)")] = 1,
    scenarios: Annotated[
        Path | None, typer.Option(help="Dossier (ou fichier) de scénarios YAML")
    ] = None,
    only: Annotated[
        list[str] | None, typer.Option(help="Seulement ce scénario (répétable)")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Dossier des rapports")] = None,
    strict: Annotated[bool, typer.Option(help="Code de sortie 1 si pass^1 < 1")] = False,
) -> None:
    """Play the secretary assistant's scenarios and score pass^1 / pass^k."""
    from agents.models import ModelUnavailable
    from evals import secretary as secretary_eval
    from evals.secretary_runner import RunRecord
    from evals.secretary_scenarios import ScenarioError

    def progress(run: RunRecord) -> None:
        mark = "ok " if run.passed else "ÉCHEC"
        typer.echo(f"{mark} {run.scenario} ({run.repeat}) {run.seconds:.1f} s")
        for reason in run.failures:
            typer.echo(f"      {reason}")

    try:
        result = secretary_eval.evaluate(
            get_settings(),
            model=model,
            scenarios=scenarios or secretary_eval.SCENARIOS,
            repeats=repeats,
            only=only or None,
            progress=progress,
        )
    except (ScenarioError, ModelUnavailable, ValueError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    json_path, md_path = secretary_eval.write_reports(result, out or secretary_eval.REPORTS)
    typer.echo(secretary_eval.summary(result))
    typer.echo(f"Rapports : {json_path} et {md_path}")
    if strict and result.pass_1 < 1.0:
        raise typer.Exit(1)


@model_cli.command("accept")
def model_accept(
    model: Annotated[str, typer.Argument(help="Modèle Ollama (ex. qwen3:8b) ou openai:NOM")],
    repeats: Annotated[int, typer.Option(min=1, help="Exécutions par scénario (pass^k)")] = 1,
    scenarios: Annotated[
        list[Path] | None,
        typer.Option(help="Dossier de scénarios (répétable ; défaut : livrés + ceux du cabinet)"),
    ] = None,
    only: Annotated[
        list[str] | None, typer.Option(help="Seulement ce scénario (répétable)")
    ] = None,
) -> None:
    """Validate a model against the rules floor on the secretary scenarios; the assistant
    uses it (under ACCUEIL_LLM_PROVIDER=auto) only when accepted and unchanged."""
    import getpass

    from agents.models import ModelUnavailable
    from app.services.core.audit import Actor
    from evals.acceptance import run_acceptance
    from evals.secretary_runner import RunRecord
    from evals.secretary_scenarios import ScenarioError
    from models.db import make_engine

    def progress(run: RunRecord) -> None:
        typer.echo(f"{'ok ' if run.passed else 'ÉCHEC'} {run.scenario} ({run.repeat})")

    settings = get_settings()
    try:
        row = run_acceptance(
            settings,
            make_engine(settings.resolved_database_url),
            model,
            Actor.system(f"cli:{getpass.getuser()}"),
            repeats=repeats,
            scenarios=scenarios or None,
            only=only or None,
            progress=progress,
        )
    except (ScenarioError, ModelUnavailable, ValueError) as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    typer.echo(
        f"{row.model} : pass^1 {row.pass_1:.2f} (rules {row.rules_pass_1:.2f}), "
        f"pass^{row.repeats} {row.pass_k:.2f}, {row.scenarios} scénarios, "
        f"empreinte {row.digest[:12] or '—'}."
    )
    if not row.accepted:
        typer.echo("REFUSÉ : " + " ".join(row.reasons))
        raise typer.Exit(1)
    typer.echo("ACCEPTÉ : l'assistant peut l'utiliser tant que son empreinte ne change pas.")


@cli.command()
def backup(
    output: Annotated[
        Path | None, typer.Option(help="Archive à écrire (défaut : accueil-sauvegarde-DATE.tar.gz)")
    ] = None,
) -> None:
    """Back up the database, the vector store, the knowledge files, the conversations, the
    job queue and the secret key into one tar.gz archive (safe while the app runs)."""
    from app.services.core.errors import DomainError
    from app.services.operations.backup import create_backup

    try:
        report = create_backup(get_settings(), output)
    except DomainError as exc:
        typer.echo(exc.fr, err=True)
        raise typer.Exit(1) from exc
    manifest = report.manifest
    size = sum(f.size for f in manifest.files)
    typer.echo(
        f"Sauvegarde écrite : {report.path} ({len(manifest.files)} fichiers, "
        f"{size / 1024**2:.1f} Mo, base {manifest.database}, "
        f"révision {manifest.alembic_revision or '-'})."
    )


@cli.command()
def restore(
    archive: Annotated[Path, typer.Argument(help="Archive écrite par « accueil backup »")],
    data_dir: Annotated[
        Path | None, typer.Option(help="Dossier de données cible (défaut : ACCUEIL_DATA_DIR)")
    ] = None,
    force: Annotated[bool, typer.Option(help="Remplacer un dossier ou une base non vide")] = False,
) -> None:
    """Restore a backup into an empty data directory and database (hashes checked first)."""
    from app.services.core.errors import DomainError
    from app.services.operations.backup import restore as restore_backup

    settings = get_settings()
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": data_dir})
    try:
        report = restore_backup(archive, settings, force=force)
    except DomainError as exc:
        typer.echo(exc.fr, err=True)
        raise typer.Exit(1) from exc
    manifest = report.manifest
    typer.echo(
        f"Sauvegarde du {manifest.created_at} (Accueil {manifest.app_version}, "
        f"révision {manifest.alembic_revision or '-'}) restaurée dans {report.data_dir}."
    )
    typer.echo(f"Base de données ({manifest.database}) : {report.database}")
    for item in report.restored[1:]:
        typer.echo(f"  {item}")
    typer.echo("Vérifiez le schéma avec « accueil db upgrade » avant de démarrer.")


def main() -> None:
    cli()
