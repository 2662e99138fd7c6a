import "./agents/agents.css";
import { answer, api } from "../api.js";
import { BotList } from "./bots/bot-list.js";
import { BotPage } from "./bots/bot-page.js";
import { StartBotForm } from "./bots/start-bot-form.js";
import { usePoll } from "./bots/use-poll.js";

const loadBots = () => answer(api.GET("/api/bots")).then((list) => list.bots);

/** Bots (issue 11): `#/bots` lists (live) and starts them; `#/bots/<name>` shows one and its logs. */
export function BotsPage(props: { route: string[] }) {
  const name = props.route[0];
  if (name) return <BotPage key={name} name={name} />;
  return <BotsHome />;
}

function BotsHome() {
  // Polled every 2.5 s: state, uptime and stats change without events for the list.
  const { data, error, reload } = usePoll(loadBots, 2500);
  return (
    <>
      <h1>Bots</h1>
      <section className="section" aria-labelledby="bot-list">
        <h2 id="bot-list">Your bots</h2>
        <BotList bots={data} error={error} reload={reload} />
      </section>
      <section className="section" aria-labelledby="start-bot">
        <h2 id="start-bot">Start a bot</h2>
        <StartBotForm onStarted={reload} />
      </section>
    </>
  );
}
