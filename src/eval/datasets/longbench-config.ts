import type { MetricName } from '../metrics/index.js';

/**
 * LongBench (v1) per-task settings for its 16 English tasks, as in THUDM/LongBench
 * config/dataset2prompt.json, config/dataset2maxlen.json, eval.py (dataset2metric) and pred.py.
 */
export interface LongBenchTask {
  /** prompt template with {context} and {input} */
  prompt: string;
  /** maximum new tokens */
  maxGen: number;
  metric: MetricName;
  /** pred.py feeds these tasks without the chat template */
  noChat: boolean;
  /** eval.py scores only the first line of the prediction for these */
  firstLine: boolean;
}

const QA_PASSAGES =
  'Answer the question based on the given passages. Only give me the answer and do not output any other words.\n\nThe following are given passages.\n{context}\n\nAnswer the question based on the given passages. Only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:';

const task = (prompt: string, maxGen: number, metric: MetricName, noChat = false, firstLine = false): LongBenchTask => ({
  prompt,
  maxGen,
  metric,
  noChat,
  firstLine,
});

export const LONGBENCH_TASKS: Record<string, LongBenchTask> = {
  narrativeqa: task(
    'You are given a story, which can be either a novel or a movie script, and a question. Answer the question as concisely as you can, using a single phrase if possible. Do not provide any explanation.\n\nStory: {context}\n\nNow, answer the question based on the story as concisely as you can, using a single phrase if possible. Do not provide any explanation.\n\nQuestion: {input}\n\nAnswer:',
    128,
    'f1',
  ),
  qasper: task(
    'You are given a scientific article and a question. Answer the question as concisely as you can, using a single phrase or sentence if possible. If the question cannot be answered based on the information in the article, write "unanswerable". If the question is a yes/no question, answer "yes", "no", or "unanswerable". Do not provide any explanation.\n\nArticle: {context}\n\n Answer the question based on the above article as concisely as you can, using a single phrase or sentence if possible. If the question cannot be answered based on the information in the article, write "unanswerable". If the question is a yes/no question, answer "yes", "no", or "unanswerable". Do not provide any explanation.\n\nQuestion: {input}\n\nAnswer:',
    128,
    'f1',
  ),
  multifieldqa_en: task(
    'Read the following text and answer briefly.\n\n{context}\n\nNow, answer the following question based on the above text, only give me the answer and do not output any other words.\n\nQuestion: {input}\nAnswer:',
    64,
    'f1',
  ),
  hotpotqa: task(QA_PASSAGES, 32, 'f1'),
  '2wikimqa': task(QA_PASSAGES, 32, 'f1'),
  musique: task(QA_PASSAGES, 32, 'f1'),
  gov_report: task(
    'You are given a report by a government agency. Write a one-page summary of the report.\n\nReport:\n{context}\n\nNow, write a one-page summary of the report.\n\nSummary:',
    512,
    'rouge_l',
  ),
  qmsum: task(
    'You are given a meeting transcript and a query containing a question or instruction. Answer the query in one or more sentences.\n\nTranscript:\n{context}\n\nNow, answer the query based on the above meeting transcript in one or more sentences.\n\nQuery: {input}\nAnswer:',
    512,
    'rouge_l',
  ),
  multi_news: task(
    'You are given several news passages. Write a one-page summary of all news. \n\nNews:\n{context}\n\nNow, write a one-page summary of all the news.\n\nSummary:',
    512,
    'rouge_l',
  ),
  trec: task(
    'Please determine the type of the question below. Here are some examples of questions.\n\n{context}\n{input}',
    64,
    'classification',
    true,
    true,
  ),
  triviaqa: task(
    'Answer the question based on the given passage. Only give me the answer and do not output any other words. The following are some examples.\n\n{context}\n\n{input}',
    32,
    'f1',
    true,
    true,
  ),
  samsum: task(
    'Summarize the dialogue into a few short sentences. The following are some examples.\n\n{context}\n\n{input}',
    128,
    'rouge_l',
    true,
    true,
  ),
  passage_count: task(
    'There are some paragraphs below sourced from Wikipedia. Some of them may be duplicates. Please carefully read these paragraphs and determine how many unique paragraphs there are after removing duplicates. In other words, how many non-repeating paragraphs are there in total?\n\n{context}\n\nPlease enter the final count of unique paragraphs after removing duplicates. The output format should only contain the number, such as 1, 2, 3, and so on.\n\nThe final answer is: ',
    32,
    'count',
  ),
  passage_retrieval_en: task(
    'Here are 30 paragraphs from Wikipedia, along with an abstract. Please determine which paragraph the abstract is from.\n\n{context}\n\nThe following is an abstract.\n\n{input}\n\nPlease enter the number of the paragraph that the abstract is from. The answer format must be like "Paragraph 1", "Paragraph 2", etc.\n\nThe answer is: ',
    32,
    'retrieval',
  ),
  lcc: task('Please complete the code given below. \n{context}Next line of code:\n', 64, 'edit_sim', true),
  'repobench-p': task('Please complete the code given below. \n{context}{input}Next line of code:\n', 64, 'edit_sim', true),
};

export const LONGBENCH_TASK_NAMES = Object.keys(LONGBENCH_TASKS);
