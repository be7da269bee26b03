from tune_worker.main import main

main()
